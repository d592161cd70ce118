"""Direct design (METHOD.md §1.9): a grown architecture, re-initialised and trained from scratch.

The source is a finished growing run (`tfgrow.DirectDesign.source_run_dir`): its `summary.json`
`architecture` (channel group -> width) and `blocks` (block -> 0/1) are applied to the same
growable model (`tfgrow.train.model_fn`, e.g. `resnet_cifar`), converted to stock Keras layers
(`tfgrow.export.build_plain_model`), re-initialised (he_normal kernels, as the growable layers
start; BN at gamma 1, beta 0) and trained for `tfgrow.train.epochs` on the run's schedule. The
run refuses a source that has not finished or that grew another model or dataset.
"""

import json
import os

import gin
import keras
import numpy as np
from absl import logging

from tfgrow.baselines import plain
from tfgrow.export import build_plain_model

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
            f"{missing[:6]} differ. Received: {path}"
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
    channels = {
        name: (np.arange(width), np.ones([width], np.float32))
        for name, width in architecture.items()
    }
    gates = {name: 1.0 if blocks[name] else None for name in gated}
    full_model = baseline.build(build_plain_model, network, {}, {})
    grown = build_plain_model(network, channels, gates)
    model = baseline.build(reinitialise, grown, baseline.seed + 1)
    ledger = baseline.new_ledger(full_model)
    evaluation = baseline.train(model, "train", baseline.epochs, ledger)
    return baseline.write_summary(
        model,
        full_model,
        ledger,
        evaluation,
        architecture,
        blocks,
        source_run_dir=design.source_run_dir,
        source_eval_accuracy=source["eval_accuracy"],
    )
