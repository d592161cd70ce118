"""Direct design (METHOD.md §1.9): a grown architecture, re-initialised and trained from scratch.

The source is a finished growing run (`tfgrow.DirectDesign.source_run_dir`): its `summary.json`
`architecture` (channel group -> width) and `blocks` (block -> 0/1) are applied to the same
growing model (`tfgrow.train.model_fn`, e.g. `@tfgrow.grown_model` of configs/models/resnet20.gin):
its source Keras model rebuilt at those widths through the graph engine's one weight slicer
(`tfgrow.growing.plain.plain_keras_model`), re-initialised (he_normal kernels; BN at gamma 1,
beta 0) and trained for `tfgrow.train.epochs` on the run's schedule. The run refuses a source
that has not finished or that grew another model or dataset.
"""

import json
import os

import gin
import keras
import numpy as np
from absl import logging

from tfgrow.export import full_plain_model
from tfgrow.growing.plain import plain_keras_model
from tfgrow.train import plain

SOURCE_METHODS = ("grow", "random")


@gin.configurable(module="tfgrow")
class DirectDesign:
    """Direct-design settings (`tfgrow.DirectDesign.*` in gin).

    Args:
        source_run_dir: model_dir of a finished growing run of the same model and dataset.
    """

    def __init__(self, source_run_dir=None):
        if not source_run_dir:
            raise ValueError(
                "Expected tfgrow.DirectDesign.source_run_dir: the --model_dir of a finished "
                'growing run. Received: None. Add e.g. --gin_bindings="tfgrow.DirectDesign.'
                "source_run_dir='runs/fashion_mnist_resnet20_grow'\""
            )
        self.source_run_dir = str(source_run_dir)


def read_source(source_run_dir, model_name, dataset, channel_groups, gated_blocks):
    """The source run's summary, checked against this run; raises ValueError if unusable."""
    path = os.path.join(source_run_dir, "summary.json")
    if not os.path.exists(path):
        state = (
            "it has checkpoints but no summary.json: it has not finished"
            if os.path.isdir(os.path.join(source_run_dir, "checkpoints"))
            else "no summary.json there"
        )
        raise ValueError(
            f"Expected a finished growing run in tfgrow.DirectDesign.source_run_dir. Received: "
            f"{source_run_dir!r} ({state}). Let the growing run finish, or point to another."
        )
    with open(path) as f:
        summary = json.load(f)
    found = (summary.get("method"), summary.get("model"), summary.get("dataset"))
    if found[0] not in SOURCE_METHODS or found[1:] != (model_name, dataset):
        raise ValueError(
            f"Expected a growing run ({' or '.join(SOURCE_METHODS)}) of model {model_name!r} on "
            f"{dataset!r} in {source_run_dir!r}. Received: method={found[0]!r}, "
            f"model={found[1]!r}, dataset={found[2]!r}. Use the same model and data configs as "
            "the source run."
        )
    architecture, blocks = summary["architecture"], summary.get("blocks", {})
    missing = sorted(set(channel_groups) ^ set(architecture)) + sorted(
        set(gated_blocks) - set(blocks)
    )
    if missing:
        raise ValueError(
            f"The source run's architecture does not fit {model_name!r}: groups or blocks "
            f"{missing[:6]} differ. Received: {path}. Use the source run's model config."
        )
    for name, width in architecture.items():
        if not 1 <= int(width) <= channel_groups[name]:
            raise ValueError(
                f"Expected a width in [1, {channel_groups[name]}] for group {name!r}. "
                f"Received: {width} in {path}"
            )
    return summary


def reinitialise(model, seed):
    """A copy of `model` with fresh weights: he_normal kernels, zero biases, BN reset."""
    fresh = keras.models.clone_model(model)
    initializer = keras.initializers.HeNormal(seed=seed)
    for layer in fresh.layers:
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense):
            layer.kernel.assign(initializer(layer.kernel.shape))
    return fresh


def build_model(network, architecture, blocks, seed):
    """The stock Keras model of `network` at `architecture` and `blocks`, freshly initialised.

    Args:
        network: the growing model of the source run, a `GrowingModel` (`tfgrow.grow`).
        architecture: channel group -> width (the first `width` channels are kept: all are
            re-initialised, so which ones does not matter).
        blocks: block -> 0/1; gated blocks at 0 are removed, the others compute their branch as
            the source model does (a plain block: F(x)).
        seed: seed of the fresh kernels.
    """
    channels = {
        name: (np.arange(width), np.ones([width], np.float32))
        for name, width in architecture.items()
    }
    gates = {name: None for name in network.gate_groups if not blocks[name]}
    return reinitialise(plain_keras_model(network, channels, gates), seed)


def run(**settings):
    """One direct-design run; `settings` are `tfgrow.train.train`'s; returns the summary."""
    design = DirectDesign()
    baseline = plain.PlainRun(**settings)
    info = baseline.info
    network = baseline.build(baseline.model_fn, info.input_shape, info.num_classes, growing=True)
    gated = [name for name in network.gate_groups]
    sizes = {name: group.size for name, group in network.channel_groups.items()}
    source = read_source(design.source_run_dir, network.name, baseline.dataset, sizes, gated)
    if source["epochs"] != baseline.epochs:
        logging.warning(
            "The source run trained %d epochs, this one trains %d: not the same schedule.",
            source["epochs"],
            baseline.epochs,
        )
    architecture = {name: int(width) for name, width in source["architecture"].items()}
    blocks = {name: int(on) for name, on in source["blocks"].items()}
    full_model = baseline.build(full_plain_model, network)
    model = baseline.build(build_model, network, architecture, blocks, baseline.seed + 1)
    return baseline.train_from_scratch(
        model,
        full_model,
        architecture,
        blocks,
        source_run_dir=design.source_run_dir,
        source_eval_accuracy=source["eval_accuracy"],
    )
