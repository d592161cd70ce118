"""L1-norm filter pruning (Li et al. 2017, "Pruning Filters for Efficient ConvNets").

1. Train the full plain Keras model (`tfgrow.train.model_fn`) for `tfgrow.train.epochs`.
2. Prune every channel group to the same fraction of its filters: the largest uniform width
   multiplier whose params (or FLOPs, `tfgrow.Budget.metric`) meet `tfgrow.Budget.target`
   (`sizing.uniform_widths`, as uniform pruning), keeping in each group the filters with the
   largest kernel L1 norms. Li et al. prune each layer by its own smallest-norm filters (their
   ResNet runs use one rate per stage); one rate for every group is the choice that meets a
   global budget without a sensitivity analysis. Residual-tied producers share their channels,
   so a channel's score is the sum of the L1 norms of its filter in every member kernel.
3. Slice the weights (`tfgrow.graph.slicing.rebuild_with_weights`) and fine-tune for
   `fine_tune_epochs_ratio * epochs` epochs at `fine_tune_learning_rate` on the run's schedule.

Training FLOPs: pretraining at full width plus fine-tuning the pruned network, against training
the full network for the pretraining's steps (`train_cost_savings` < 1: pruning after training
costs more than training the full network alone).
"""

import os

import gin
import numpy as np

from tfgrow.baselines import sizing
from tfgrow.budget import Budget
from tfgrow.graph import slicing
from tfgrow.train import plain, saving

PRETRAINED_MODEL_FILE = "pretrained_model.keras"


@gin.configurable(module="tfgrow")
class L1Pruning:
    """L1-pruning settings (`tfgrow.L1Pruning.*` in gin).

    Args:
        fine_tune_epochs_ratio: fine-tuning runs max(1, round(ratio * tfgrow.train.epochs))
            epochs (a ratio, so configs/tiny.gin's one epoch shortens it too).
        fine_tune_learning_rate: base learning rate of the fine-tuning schedule (Li et al.
            fine-tune at 0.001 for 40 epochs; short runs need more).
    """

    def __init__(self, fine_tune_epochs_ratio=0.25, fine_tune_learning_rate=0.01):
        if not fine_tune_epochs_ratio > 0:
            raise ValueError(
                f"Expected tfgrow.L1Pruning.fine_tune_epochs_ratio > 0. Received: "
                f"{fine_tune_epochs_ratio}"
            )
        if not fine_tune_learning_rate > 0:
            raise ValueError(
                f"Expected tfgrow.L1Pruning.fine_tune_learning_rate > 0. Received: "
                f"{fine_tune_learning_rate}"
            )
        self.fine_tune_epochs_ratio = float(fine_tune_epochs_ratio)
        self.fine_tune_learning_rate = float(fine_tune_learning_rate)


def filter_scores(model, graph):
    """Per group, the L1 norm of each output filter summed over the group's producers.

    Returns:
        A list over groups of float64 vectors (one score per channel of the group).
    """
    scores = [np.zeros(int(size), np.float64) for size in graph.group_sizes]
    for name in graph.width_layers:
        layout = graph.output_layouts[name]
        layer = model.get_layer(name)
        kernel = getattr(layer, "pointwise_kernel", None)
        kernel = layer.kernel if kernel is None else kernel
        if len(layout) != 1 or kernel.shape[-1] != graph.group_sizes[layout[0]]:
            continue  # depthwise layers and multi-group outputs produce no filters of their own
        norms = np.abs(kernel.numpy()).reshape(-1, kernel.shape[-1]).sum(axis=0)
        scores[layout[0]] += norms
    return scores


def kept_filters(graph, scores, widths):
    """Per group, the indices (ascending) of its `widths[g]` largest-score channels."""
    keep = []
    for g in range(graph.num_groups):
        if graph.fixed[g]:
            keep.append(np.arange(graph.group_sizes[g]))
            continue
        order = np.argsort(-scores[g], kind="stable")  # ties: the lower index stays
        keep.append(np.sort(order[: int(widths[g])]))
    return keep


def run(**settings):
    """One L1-pruning run; `settings` are `tfgrow.train.train`'s; returns the summary."""
    options = L1Pruning()
    baseline = plain.PlainRun(**settings)
    info = baseline.info
    full_model = baseline.build(baseline.model_fn, info.input_shape, info.num_classes)
    sized = sizing.uniform_widths(full_model, Budget())
    graph = sized.graph
    ledger = baseline.new_ledger(full_model)
    pretrained = baseline.train(full_model, "pretrain", baseline.epochs, ledger)
    saving.save_model_atomically(
        full_model, os.path.join(baseline.model_dir, PRETRAINED_MODEL_FILE)
    )
    full_training_flops = ledger.train_flops_full  # the reference: the full network, trained
    keep = kept_filters(graph, filter_scores(full_model, graph), sized.widths)
    model = baseline.build(slicing.rebuild_with_weights, full_model, graph, keep)
    fine_tune_epochs = max(1, round(options.fine_tune_epochs_ratio * baseline.epochs))
    evaluation = baseline.train(
        model, "fine_tune", fine_tune_epochs, ledger, options.fine_tune_learning_rate
    )
    ledger.train_flops_full = full_training_flops
    return baseline.write_summary(
        model,
        full_model,
        ledger,
        evaluation,
        graph.structure(sized.widths),
        {},
        **sized.summary_fields(),
        l1_pruning={
            "pretrain_epochs": baseline.epochs,
            "fine_tune_epochs": fine_tune_epochs,
            "pretrained_eval_accuracy": pretrained["accuracy"],
            "kept_filters": {
                graph.group_names[g]: [int(i) for i in keep[g]]
                for g in range(graph.num_groups)
                if not graph.fixed[g]
            },
        },
    )
