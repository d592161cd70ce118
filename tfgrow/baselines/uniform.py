"""Uniform pruning (METHOD.md §1.9): the same fraction of channels in every group, from scratch.

The plain Keras model (`tfgrow.train.model_fn`, e.g. `keras_resnet_cifar`) is scaled by the
largest uniform width multiplier whose params (or FLOPs, `tfgrow.Budget.metric`) meet
`tfgrow.Budget.target` of the full network's (`sizing.uniform_widths`), re-initialised and
trained for `tfgrow.train.epochs` on the run's schedule. Its training FLOPs are the smaller
network's; `train_cost_savings` compares them with the full network's over the same steps.
"""

import keras

from tfgrow.baselines import plain, sizing
from tfgrow.budget import Budget
from tfgrow.graph import analysis as graph_lib
from tfgrow.graph import slicing


def run(**settings):
    """One uniform-pruning run; `settings` are `tfgrow.train.train`'s; returns the summary."""
    budget = Budget()
    baseline = plain.PlainRun(**settings)
    full_model = baseline.build(
        baseline.model_fn, baseline.info.input_shape, baseline.info.num_classes
    )
    graph = graph_lib.analyze(full_model)
    multiplier, widths, cost, full_cost = sizing.uniform_widths(full_model, graph, budget)
    keras.utils.set_random_seed(baseline.seed + 1)  # fresh initialisation of the small network
    model = baseline.build(slicing.build_at_widths, full_model, graph, widths)
    ledger = baseline.new_ledger(full_model)
    evaluation = baseline.train(model, "train", baseline.epochs, ledger)
    return baseline.write_summary(
        model,
        full_model,
        ledger,
        evaluation,
        graph.structure(widths),
        {},
        budget_target=budget.target,
        budget_metric=budget.metric,
        width_multiplier=multiplier,
        uniform={"cost": cost, "full_cost": full_cost, "fraction": cost / full_cost},
    )
