"""Export: the final network as a plain Keras model, a SavedModel and a TFLite file.

`plain_model(network, temperature, epoch)` rebuilds a growing network at its architecture H(s)
(METHOD.md §1.6) from stock Keras layers, computing what the growing network computes at
inference (tests: max abs difference <= 1e-4): a `GrowingModel` (`tfgrow.grow`) becomes its source
Keras model rebuilt through the one weight slicer `tfgrow.graph.slicing` (`tfgrow.growing.plain`):
kept channels sliced, mask values folded into the BN gamma and beta (or kernel and bias) the engine
applies them to, kept gated blocks' values folded into their branch, off blocks bypassed.

`export_model` writes it with `model.export` (a SavedModel whose `serve` signature takes the
images) or as a `.tflite` file, atomically: into a temporary directory beside the target, renamed
into place at the end. It replaces only a previous tfgrow export (marked in its
`export_info.json`); a file, a non-empty directory of anything else, and the run's own model
directory or a directory containing it stop the export (`check_export_target`).
`tfgrow.run_export.export_run` does this for a run directory (the launcher `launchers/export.py`),
for growing runs and for MorphNet runs, and checks the exported model's params
and FLOPs (`tfgrow.graph.counting.count_model`, the counter MorphNet's summaries use) against
`summary.json` and a growing run's export against its network's inference (`check_outputs`).
"""

import json
import os
import shutil
import uuid

import keras
import numpy as np
import tensorflow as tf

from tfgrow.growing.model import GrowingModel
from tfgrow.growing.plain import plain_keras_model
from tfgrow.growing.recurrent import reset_states
from tfgrow.precision import dtype_policy_scope

FORMATS = ("saved_model", "tflite")
# Runs whose final network is a stock Keras model saved as final_model.keras (tfgrow.train.plain);
# magnitude pruning's is too, but its summary counts nonzero params, so it is not exported.
STOCK_MODEL_METHODS = ("morphnet", "width_multiplier", "uniform", "direct_design", "l1_pruning")
FINAL_MODEL_FILE = "final_model.keras"
TFLITE_FILE = "model.tflite"
INFO_FILE = "export_info.json"
# export_info.json's key that marks a directory as a tfgrow export (the only kind of directory an
# export replaces), and its value, the layout version.
EXPORT_MARKER = "tfgrow_export_format"
EXPORT_FORMAT = 1
# What an export writes at its top level: SavedModel files, the TFLite file and export_info.json.
EXPORT_ENTRIES = ("saved_model.pb", "fingerprint.pb", "variables", "assets", INFO_FILE, TFLITE_FILE)
# check_outputs: the export may differ from the growing network's inference by float32 rounding
# only, relative to its largest output (at least 1).
OUTPUT_TOLERANCE = 1e-4
# ... and by bfloat16 or float16 rounding when the network computes under a mixed policy (8 and
# 11 significant bits: ~0.4% and ~0.05% per op; measured on a ResNet-20: 0.4% of the outputs'
# scale, tests/growing/test_bfloat16_execution.py). A launcher export restores the run's network
# in float32 and checks it at OUTPUT_TOLERANCE.
MIXED_OUTPUT_TOLERANCE = {"bfloat16": 3e-2, "float16": 5e-3}


class ExportError(RuntimeError):
    """An export that cannot be made, or that would not match what the run reported."""


# --------------------------------------------------------------------------- plain model
def kept_structures(network, temperature=None, epoch=0.0):
    """(group -> (kept indices, mask values at them), block -> gate value or None if off).

    H(s) with the mask values the growing network uses at inference: sigma(beta s) with the
    temperatures of `temperature` (None: beta = 1, the network's own default for inference).
    """
    channels = {}
    for name, group in network.channel_groups.items():
        keep = group.deterministic_keep().numpy()
        values = network.inference_values(name, group, temperature, epoch).numpy()
        indices = np.flatnonzero(keep)
        channels[name] = (indices, values[indices])
    gates = {}
    for block, group in network.gate_groups.items():
        on = bool(group.deterministic_keep().numpy()[0])
        value = float(network._probabilities(group, temperature, epoch).numpy()[0])
        gates[block] = value if on else None
    return channels, gates


def plain_model(network, temperature=None, epoch=None, name=None):
    """A stock-Keras functional model computing `network`'s inference at H(s).

    Args:
        network: a `GrowingModel` from `tfgrow.grow` (growing or full); its source model is
            rebuilt through `tfgrow.graph.slicing`.
        temperature: the run's `Temperature` (the mask values are sigma(beta s)); None for what
            `network(x)` uses (the `GrowingCallback`'s, or the one saved with the model, or
            beta = 1 when there is none).
        epoch: the epoch (global temperature mode only); None as `temperature`.
        name: the Keras model's name (default: the network's).

    Returns:
        A float32 `keras.Model` of the source model's stock layers, names and input name (whatever
        dtype policy the network trained with).

    Raises:
        TypeError: `network` is not a `GrowingModel`.
    """
    _check_growing_model(network)
    if temperature is None:
        from tfgrow.train.callback import inference_settings

        temperature, default_epoch = inference_settings(network)
        epoch = default_epoch if epoch is None else epoch
    epoch = 0.0 if epoch is None else float(epoch)
    if network.growing:
        channels, gates = kept_structures(network, temperature, epoch)
    else:
        channels, gates = {}, {}
    with dtype_policy_scope("float32"):  # whatever policy the network trained with
        return plain_keras_model(
            network, channels, gates, name, dtype_policy="float32", serving=True
        )


def full_plain_model(network, name=None):
    """A stock-Keras functional model of `network` with every channel and block kept (values 1).

    The maximal network of a growing run, e.g. to time against its final architecture
    (`tfgrow.train.step_timing`). `network` is a `GrowingModel` (else a TypeError); its recurrent
    layers are built as `plain_model`'s, so that the two are comparable.
    """
    _check_growing_model(network)
    return plain_keras_model(network, {}, {}, name, serving=True)


def _check_growing_model(network):
    if not isinstance(network, GrowingModel):
        raise TypeError(
            "Expected a growing network from tfgrow.grow (a GrowingModel). Received: "
            f"{type(network).__name__}. Fix: grow the Keras model with tfgrow.grow(model), or "
            "export a stock Keras model as it is with export_model."
        )


# --------------------------------------------------------------------------- writing
def export_model(model, export_dir, format="saved_model", info=None, protected=()):
    """Writes `model` to `export_dir` atomically; returns the path of what it wrote.

    `export_dir` must be absent, an empty directory or a previous tfgrow export (see
    `check_export_target`); anything else stops with `ExportError` before any work.

    Args:
        model: a Keras model (stock layers; see `plain_model`).
        export_dir: the directory to create, or a previous tfgrow export to replace.
        format: "saved_model" (`model.export`: signatures `serve` and `serving_default`) or
            "tflite" (`export_dir/model.tflite`, converted from that SavedModel).
        info: optional dict written to `export_dir/export_info.json` (with the tfgrow export
            marker `EXPORT_MARKER`, which is what lets a later export replace this one).
        protected: directories the export must neither be nor contain (the run's model_dir).
    """
    if format not in FORMATS:
        raise ValueError(f"Expected format in {FORMATS}. Received: format={format!r}")
    check_export_target(export_dir, protected)
    export_dir = os.path.abspath(export_dir)
    parent = os.path.dirname(export_dir)
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as error:
        raise ExportError(
            f"Could not create the parent directory of --export_dir={export_dir}: {error}. "
            "Choose an --export_dir whose parent is a writable directory."
        ) from error
    temporary = os.path.join(parent, f".{os.path.basename(export_dir)}.tmp-{uuid.uuid4().hex}")
    try:
        saved_model_dir = temporary if format == "saved_model" else temporary + "-saved_model"
        model.export(saved_model_dir, format="tf_saved_model", verbose=False)
        if format == "tflite":
            os.makedirs(temporary)
            converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir)
            with open(os.path.join(temporary, TFLITE_FILE), "wb") as f:
                f.write(converter.convert())
            shutil.rmtree(saved_model_dir)
        with open(os.path.join(temporary, INFO_FILE), "w") as f:
            json.dump({**(info or {}), EXPORT_MARKER: EXPORT_FORMAT}, f, indent=2, sort_keys=True)
        check_export_target(export_dir, protected)  # again: it may have changed meanwhile
        _replace_directory(temporary, export_dir)
    finally:
        for leftover in (temporary, temporary + "-saved_model"):
            shutil.rmtree(leftover, ignore_errors=True)
    return export_dir if format == "saved_model" else os.path.join(export_dir, TFLITE_FILE)


def check_export_target(export_dir, protected=()):
    """Stops unless writing `export_dir` can destroy nothing that tfgrow's export did not write.

    Allowed: a path that does not exist, an empty directory, or a previous tfgrow export (its
    `export_info.json` carries `EXPORT_MARKER`) holding only what an export writes.

    Args:
        export_dir: the export's target.
        protected: directories `export_dir` must neither be nor contain (the run's model_dir).

    Raises:
        ExportError: naming what is there and what to do instead.
    """
    target = os.path.realpath(export_dir)
    for directory in protected:
        directory = os.path.realpath(directory)
        if target == directory or directory.startswith(target.rstrip(os.sep) + os.sep):
            relation = "is" if target == directory else "contains"
            raise ExportError(
                f"Refusing to export to {export_dir}: it {relation} the run's model directory "
                f"{directory}, and writing the export there would delete the run. Choose a new "
                f"--export_dir, e.g. {directory.rstrip(os.sep)}_export."
            )
    if not os.path.lexists(export_dir):
        return
    if os.path.islink(export_dir) or not os.path.isdir(export_dir):
        kind = "a symbolic link" if os.path.islink(export_dir) else "a file"
        raise ExportError(
            f"Refusing to export to {export_dir}: it is {kind}, not a directory tfgrow "
            "exported, and export does not replace what it did not write. Choose a new "
            "--export_dir, or move it away first."
        )
    entries = sorted(os.listdir(export_dir))
    if not entries:
        return
    if not _is_tfgrow_export(export_dir):
        shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
        raise ExportError(
            f"Refusing to export to {export_dir}: it is a non-empty directory (holding {shown}) "
            f"that is not a tfgrow export (no {INFO_FILE} with "
            f"{EXPORT_MARKER!r}), and export replaces only a previous tfgrow export. Choose a "
            "new --export_dir, or move the directory's contents away first."
        )
    extra = [entry for entry in entries if entry not in EXPORT_ENTRIES]
    if extra:
        raise ExportError(
            f"Refusing to replace the tfgrow export {export_dir}: it also holds {extra}, which "
            "export did not write. Move them out of it, or choose a new --export_dir."
        )


def _is_tfgrow_export(directory):
    try:
        with open(os.path.join(directory, INFO_FILE)) as f:
            info = json.load(f)
    except (OSError, ValueError):
        return False
    return isinstance(info, dict) and info.get(EXPORT_MARKER) == EXPORT_FORMAT


def _replace_directory(source, target):
    """Renames `source` to `target`. An existing target (checked by `check_export_target`: empty
    or a previous tfgrow export) is first renamed aside, so at every moment `target` is either
    absent, the old export or the complete new one."""
    if not os.path.exists(target):
        os.rename(source, target)
        return
    aside = f"{source}-old"
    os.rename(target, aside)
    os.rename(source, target)
    shutil.rmtree(aside, ignore_errors=True)


def tflite_predict(path, images):
    """Runs a .tflite file on a batch (one example at a time, the interpreter's input shape)."""
    try:  # LiteRT, TFLite's successor, when installed; tf.lite's interpreter otherwise
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        Interpreter = tf.lite.Interpreter
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_detail = interpreter.get_output_details()[0]
    outputs = []
    for image in np.asarray(images, np.float32):
        interpreter.resize_tensor_input(input_detail["index"], [1, *image.shape])
        interpreter.allocate_tensors()
        interpreter.set_tensor(input_detail["index"], image[None])
        interpreter.invoke()
        outputs.append(interpreter.get_tensor(output_detail["index"])[0])
    return np.stack(outputs)


def example_inputs(network, num_images=8, seed=0):
    """Random inputs of `network`: normal images, or token ids below the smallest vocabulary
    of the Embeddings of a `GrowingModel` with integer inputs; a fixed batch size (a stateful
    model's) replaces `num_images`."""
    rng = np.random.default_rng(seed)
    source = network.source
    tensor = source.inputs[0]
    shape = (tensor.shape[0] or num_images, *tensor.shape[1:])
    if not np.issubdtype(np.dtype(tensor.dtype), np.integer):
        return rng.normal(size=shape).astype(np.float32)
    embeddings = [layer for layer in source.layers if isinstance(layer, keras.layers.Embedding)]
    vocabulary = min([layer.input_dim for layer in embeddings] or [2])
    return rng.integers(0, vocabulary, shape).astype(tensor.dtype)


def check_outputs(network, temperature, epoch, model, num_images=8, seed=0):
    """Max abs difference of `model` from the growing network's inference on random images.

    Stateful recurrent layers start from zero states (the export is stateless); their states
    are zero afterwards. Raises `ExportError` when it exceeds `OUTPUT_TOLERANCE` times the
    largest output magnitude (at least 1): float32 rounding of logits of size 5.6e4 is ~0.01, a
    wrong channel is O(1) of the output's scale. A network computing in bfloat16 or float16 (a
    mixed policy) is compared at `MIXED_OUTPUT_TOLERANCE` of its compute dtype.
    """
    images = example_inputs(network, num_images, seed)
    reset_states(network)  # the export is stateless: compare from a fresh state
    expected = network.forward(images, network.deterministic_context(temperature, epoch)).numpy()
    reset_states(network)
    difference = float(np.max(np.abs(model(images).numpy() - expected)))
    scale = max(1.0, float(np.max(np.abs(expected))))
    tolerance = MIXED_OUTPUT_TOLERANCE.get(network.compute_dtype, OUTPUT_TOLERANCE)
    if not difference <= tolerance * scale:
        raise ExportError(
            f"The exported model's outputs differ from the growing network's inference by up to "
            f"{difference:.3g} (outputs up to {scale:.3g}; tolerance {tolerance:g} of "
            "that); refusing to export a network that does not compute what the run trained. "
            "This is a bug in tfgrow's export: report it with the run's operative_config.gin."
        )
    return difference
