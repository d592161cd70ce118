"""A finished run directory exported: its network restored and written as a SavedModel or TFLite.

`export_run(model_dir, export_dir)` (the launcher `launchers/export.py`) exports growing runs from
their latest checkpoint and operative gin config (`restore_network`, then
`tfgrow.export.plain_model`) and MorphNet and baseline runs from `final_model.keras`, and checks
the exported model's params and FLOPs against `summary.json` (and a growing run's outputs against
its network's inference).

It reads the run's gin config, so it sits above every configurable (`tfgrow.config`) and the gin
root (`tfgrow.train.loop`); `tfgrow.export` itself knows nothing of runs.
"""

import inspect
import json
import os

import gin
import keras
import tensorflow as tf
from absl import logging

from tfgrow import config as config_lib
from tfgrow import data as data_lib
from tfgrow.export import (
    FINAL_MODEL_FILE,
    STOCK_MODEL_METHODS,
    ExportError,
    check_export_target,
    check_outputs,
    export_model,
    plain_model,
)
from tfgrow.graph import counting
from tfgrow.masks import Temperature
from tfgrow.precision import dtype_policy_scope, float32_model
from tfgrow.train import loop
from tfgrow.train.checkpoint import CheckpointError, RunCheckpoints, make_checkpoint
from tfgrow.train.methods import GROWING_METHODS


def export_run(model_dir, export_dir, format="saved_model"):
    """Exports a training run's final network; returns the export info dict.

    Growing runs (`summary.json` method "grow", "random" or "full"): the network is rebuilt from
    `operative_config.gin`, restored from the latest checkpoint and converted by `plain_model`.
    MorphNet runs and the stock-Keras baselines (`STOCK_MODEL_METHODS`): `final_model.keras` is
    exported as it is. Either way the exported model's params and FLOPs must equal `summary.json`'s,
    and a growing run's export must compute its network's inference (`check_outputs`). The export
    is float32 whatever `tfgrow.train.dtype_policy` the run trained with (a growing run's network
    is restored in float32, so `check_outputs` compares float32 with float32).
    """
    check_export_target(export_dir, protected=(model_dir,))  # before any work
    summary = _read_summary(model_dir)
    method = summary.get("method")
    if method in STOCK_MODEL_METHODS:
        path = os.path.join(model_dir, FINAL_MODEL_FILE)
        if not os.path.exists(path):
            raise ExportError(
                f"Expected the final model of a {method} run at {path}. Received: no such file."
            )
        model = float32_model(keras.models.load_model(path))
        source = path
    else:
        with dtype_policy_scope("float32"):  # the float32 network of the run's weights
            network, temperature, epoch, source = restore_network(model_dir)
        model = plain_model(network, temperature, epoch)
        difference = check_outputs(network, temperature, epoch, model)
    params, flops = counting.count_model(model)
    expected = (summary.get("params"), summary.get("flops"))
    if (params, flops) != expected:
        raise ExportError(
            f"The exported model has params={params}, flops={flops} but {model_dir}/summary.json "
            f"reports params={expected[0]}, flops={expected[1]}; refusing to export a network "
            f"that is not the one the run reported (source: {source})."
        )
    info = {
        "source": source,
        "method": method,
        "model": summary.get("model"),
        "params": params,
        "flops": flops,
        "format": format,
        "input_shape": list(model.input_shape[1:]),
    }
    if method not in STOCK_MODEL_METHODS:
        info["max_output_difference"] = difference
    path = export_model(model, export_dir, format, info, protected=(model_dir,))
    logging.info("Exported %s (params %d, flops %d) to %s", source, params, flops, path)
    return {**info, "path": path}


def _read_summary(model_dir):
    path = os.path.join(model_dir, "summary.json")
    if not os.path.exists(path):
        raise ExportError(
            f"Expected a finished run in {model_dir}. Received: no summary.json there (the run "
            "has not finished, or --model_dir is wrong)."
        )
    with open(path) as f:
        return json.load(f)


def restore_network(model_dir):
    """Rebuilds a run's network from `model_dir/operative_config.gin` and its latest checkpoint.

    Replaces the process' gin configuration with the run's (call it from a launcher or a test,
    not in the middle of a training run).

    Returns:
        (network, temperature, epoch, checkpoint path): the network's inference at the end of the
        run is `network.deterministic_context(temperature, epoch)`, as in the trainer's eval.
    """
    config_path = os.path.join(model_dir, "operative_config.gin")
    if not tf.io.gfile.exists(config_path):
        raise CheckpointError(f"Expected the run's gin config {config_path}. Received: no file.")
    gin.clear_config()
    config_lib.parse([config_path], [])
    settings = {
        name: parameter.default
        for name, parameter in inspect.signature(loop.train).parameters.items()
    }
    settings.update(gin.get_bindings("tfgrow.train"))
    info = data_lib.dataset_info(settings["dataset"], data_dir=settings["data_dir"])
    network = settings["model_fn"](
        info.input_shape,
        info.num_classes,
        growing=settings["method"] in GROWING_METHODS,
        **info.model_arguments(settings["global_batch_size"]),
    )
    network.channel_multiple = int(settings["channel_multiple"])
    trainer_state = tf.Module()
    trainer_state.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step")
    checkpoints = RunCheckpoints(
        make_checkpoint(network, trainer_state),
        os.path.join(model_dir, "checkpoints"),
        read_only=True,
    )
    path = checkpoints.restore()
    if path is None:
        raise CheckpointError(
            f"Expected a checkpoint in {os.path.join(model_dir, 'checkpoints')}. Received: none."
        )
    num_train = min(info.num_train, settings["max_train_examples"] or info.num_train)
    steps_per_epoch = max(1, num_train // settings["global_batch_size"])
    epochs = settings["epochs"]
    temperature = Temperature(
        settings["beta0"], settings["final_temperature"], settings["temperature_mode"], epochs
    )
    epoch = float(trainer_state.step.numpy()) / steps_per_epoch
    return network, temperature, epoch, path
