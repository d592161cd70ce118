"""Uniform pruning (METHOD.md §1.9): the same fraction of channels in every group, from scratch.

The plain Keras model (`tfgrow.train.model_fn`, e.g. `keras_resnet_cifar`) is scaled by the
largest uniform width multiplier whose params (or FLOPs, `tfgrow.Budget.metric`) meet
`tfgrow.Budget.target` of the full network's (`sizing.uniform_widths`), re-initialised and
trained for `tfgrow.train.epochs` on the run's schedule. Its training FLOPs are the smaller
network's; `train_cost_savings` compares them with the full network's over the same steps.
"""

import keras

from tfgrow.baselines import sizing
from tfgrow.budget import Budget
from tfgrow.graph import slicing
from tfgrow.train import plain


def run(**settings):
    """One uniform-pruning run; `settings` are `tfgrow.train.train`'s; returns the summary."""
    baseline = plain.PlainRun(**settings)
    info = baseline.info
    full_model = baseline.build(baseline.model_fn, info.input_shape, info.num_classes)
    sized = sizing.uniform_widths(full_model, Budget())
    keras.utils.set_random_seed(baseline.seed + 1)  # fresh initialisation of the small network
    model = baseline.build(slicing.build_at_widths, full_model, sized.graph, sized.widths)
    return baseline.train_from_scratch(
        model, full_model, sized.graph.structure(sized.widths), {}, **sized.summary_fields()
    )
