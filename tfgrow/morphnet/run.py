"""MorphNet runs (METHOD.md §2) and the uniform width-multiplier baseline, from `tfgrow.train`.

method "morphnet": for `num_iterations` cycles, shrink (train the current network from its fresh
initialisation with `loss + strength * G` at a constant learning rate for
`shrink_epochs_ratio * epochs` epochs, writing `structure_iter{i}.json` every epoch) then expand
(the largest ω with F(ceil(ω O')) <= ζ); the final structure is trained from scratch for
`tfgrow.train.epochs` on the configured schedule.
method "width_multiplier": the seed scaled uniformly, F(ceil(ω O°)) <= ζ, trained from scratch.

Training FLOPs (summary `train_flops`): every step actually run (shrink and retrain) counts
3 x the forward FLOPs of the network it trains x the global batch; `train_flops_full` counts the
seed at full width for the same number of steps. Shrinking trains the whole network (pruned
channels are only removed when the structure is rebuilt), so a MorphNet run costs more than its
final network alone.
"""

import os
import time

import gin
import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tfgrow.graph import analysis as graph_lib
from tfgrow.graph import counting, slicing
from tfgrow.morphnet import expand as expand_lib
from tfgrow.morphnet import phase as phase_lib
from tfgrow.morphnet.regularizers import GammaRegularizer

METHODS = ("morphnet", "width_multiplier")
REGULARIZERS = graph_lib.RESOURCES  # ("flops", "size")


@gin.configurable(module="tfgrow")
class MorphNet:
    """MorphNet settings (`tfgrow.MorphNet.*` in gin).

    Args:
        regularizer: "flops" (FLOPs per example) or "size" (weights): the resource the gamma
            regulariser weights by and the target is measured in.
        strength: λ of `loss + strength * G` while shrinking (> 0; required for "morphnet").
        gamma_threshold: a channel is alive when its group |gamma| exceeds this.
        num_iterations: shrink -> expand cycles before the final training from scratch.
        shrink_epochs_ratio: each shrink phase runs max(1, round(ratio * tfgrow.train.epochs))
            epochs (a ratio, not a count, so configs/tiny.gin's one epoch shortens it too).
        shrink_learning_rate: the shrink phases' constant learning rate; None uses
            `tfgrow.train.learning_rate`.
        target_fraction: ζ as a fraction of the seed's resource (1.0: the seed's cost).
    """

    def __init__(
        self,
        regularizer="flops",
        strength=None,
        gamma_threshold=1e-2,
        num_iterations=1,
        shrink_epochs_ratio=1.0,
        shrink_learning_rate=None,
        target_fraction=1.0,
    ):
        if regularizer not in REGULARIZERS:
            raise ValueError(
                f"Expected tfgrow.MorphNet.regularizer in {REGULARIZERS}. Received: "
                f"regularizer={regularizer!r}"
            )
        if strength is not None and not strength > 0:
            raise ValueError(
                f"Expected a positive tfgrow.MorphNet.strength (e.g. 1e-8 for FLOPs of a "
                f"CIFAR ResNet). Received: strength={strength}"
            )
        if not gamma_threshold > 0:
            raise ValueError(
                f"Expected a positive tfgrow.MorphNet.gamma_threshold (1e-2 is a sensible "
                f"default). Received: gamma_threshold={gamma_threshold}"
            )
        if int(num_iterations) != num_iterations or num_iterations < 1:
            raise ValueError(
                f"Expected tfgrow.MorphNet.num_iterations >= 1. Received: {num_iterations}"
            )
        if not shrink_epochs_ratio > 0:
            raise ValueError(
                f"Expected tfgrow.MorphNet.shrink_epochs_ratio > 0. Received: "
                f"shrink_epochs_ratio={shrink_epochs_ratio}"
            )
        if not target_fraction > 0:
            raise ValueError(
                f"Expected tfgrow.MorphNet.target_fraction > 0 (1.0 = the seed's cost). "
                f"Received: target_fraction={target_fraction}"
            )
        self.regularizer = regularizer
        self.strength = strength
        self.gamma_threshold = float(gamma_threshold)
        self.num_iterations = int(num_iterations)
        self.shrink_epochs_ratio = float(shrink_epochs_ratio)
        self.shrink_learning_rate = shrink_learning_rate
        self.target_fraction = float(target_fraction)


def run(
    model_dir,
    method,
    model_fn,
    dataset,
    epochs,
    global_batch_size,
    learning_rate,
    schedule,
    momentum,
    weight_decay,
    seed,
    data_dir,
    max_train_examples,
    max_eval_examples,
    log_every_steps,
    mock_data_if_missing,
    strategy,
    run_directory,
):
    """One MorphNet or width-multiplier run; writes its outputs and returns the summary.

    `run_directory` is the `RunDirectory` `tfgrow.train` claimed; the run records its settings.
    """
    from tfgrow.train import loop  # the gin root; imported here (it dispatches to this module)

    if epochs <= 0 or global_batch_size <= 0:
        raise ValueError(
            f"Expected positive epochs and global_batch_size. Received: epochs={epochs}, "
            f"global_batch_size={global_batch_size}"
        )
    settings = MorphNet()
    if method == "morphnet" and settings.strength is None:
        raise ValueError(
            "Expected tfgrow.MorphNet.strength for method 'morphnet'. Received: None. Set e.g. "
            "--gin_bindings='tfgrow.MorphNet.strength=1e-8'"
        )
    strategy = strategy or loop.make_strategy()
    keras.utils.set_random_seed(seed)
    tf.io.gfile.makedirs(model_dir)
    info, train_data, eval_data = loop._load_data(
        dataset,
        data_dir,
        global_batch_size,
        seed,
        max_train_examples,
        max_eval_examples,
        mock_data_if_missing,
    )
    num_train = min(info.num_train, max_train_examples or info.num_train)
    steps_per_epoch = max(1, num_train // global_batch_size)
    dist_train = strategy.experimental_distribute_dataset(train_data)
    dist_eval = strategy.experimental_distribute_dataset(eval_data)

    with strategy.scope():
        seed_model = model_fn(info.input_shape, info.num_classes)
    graph = graph_lib.analyze(seed_model)
    resource = settings.regularizer
    seed_widths = graph.full_widths()
    seed_cost = graph.cost(seed_widths, resource)
    target = settings.target_fraction * seed_cost
    expand_lib.check_target(graph, target, resource)  # before any training
    seed_flops = graph.cost(seed_widths, "flops")
    logging.info(
        "%s: %d channel groups (%d fixed: %s); seed %s %d, target %.0f",
        seed_model.name,
        graph.num_groups,
        int(graph.fixed.sum()),
        graph.fixed_groups,
        resource,
        seed_cost,
        target,
    )
    loop._write_operative_config(model_dir)
    run_directory.record()
    ledger = phase_lib.Ledger(global_batch_size, seed_flops)
    start_time = time.time()
    iterations = []
    current_widths = seed_widths
    if method == "morphnet":
        shrink_epochs = max(1, round(settings.shrink_epochs_ratio * epochs))
        shrink_rate = settings.shrink_learning_rate or learning_rate
        for iteration in range(settings.num_iterations):
            with strategy.scope():
                model = (
                    seed_model
                    if iteration == 0
                    else slicing.build_at_widths(seed_model, graph, current_widths)
                )
                regularizer = GammaRegularizer(
                    model, graph_lib.analyze(model), resource, settings.gamma_threshold
                )
            phase = phase_lib.Phase(
                f"shrink_iter{iteration}",
                model,
                strategy,
                global_batch_size,
                shrink_rate,
                momentum,
                weight_decay,
                regularizer,
                settings.strength,
                ledger,
            )
            structure_path = os.path.join(model_dir, f"structure_iter{iteration}.json")

            def on_epoch(regularizer=regularizer, path=structure_path):
                widths = regularizer.alive_widths_numpy()
                loop._write_json(path, regularizer.graph.structure(widths))

            evaluation = phase.fit(
                dist_train,
                dist_eval,
                shrink_epochs,
                model_dir,
                log_every_steps,
                seed_cost,
                on_epoch,
            )
            learned = _to_seed_order(graph, regularizer.graph, regularizer.alive_widths_numpy())
            multiplier, expanded, expanded_cost = expand_lib.expand(
                graph, learned, target, resource
            )
            iterations.append(
                {
                    "iteration": iteration,
                    "shrink_epochs": shrink_epochs,
                    "shrink_eval_accuracy": evaluation["accuracy"],
                    "learned_widths": graph.structure(learned),
                    "learned_cost": graph.cost(learned, resource),
                    "multiplier": multiplier,
                    "expanded_widths": graph.structure(expanded),
                    "expanded_cost": expanded_cost,
                }
            )
            logging.info(
                "iteration %d: learned %s %d (%.1f%% of seed), x%.4f -> %d (%.1f%%)",
                iteration,
                resource,
                iterations[-1]["learned_cost"],
                100.0 * iterations[-1]["learned_cost"] / seed_cost,
                multiplier,
                expanded_cost,
                100.0 * expanded_cost / seed_cost,
            )
            current_widths = expanded
    else:
        multiplier, current_widths, _ = expand_lib.expand(graph, seed_widths, target, resource)
        logging.info("uniform width multiplier x%.4f meets the target", multiplier)

    keras.utils.set_random_seed(seed + 1)  # the final network starts from a fresh initialisation
    with strategy.scope():
        final_model = slicing.build_at_widths(seed_model, graph, current_widths)
    total_steps = steps_per_epoch * epochs
    rate = (
        learning_rate
        if schedule == "constant"
        else loop.learning_rate_schedule(total_steps, learning_rate, schedule)
    )
    phase = phase_lib.Phase(
        "train",
        final_model,
        strategy,
        global_batch_size,
        rate,
        momentum,
        weight_decay,
        None,
        0.0,
        ledger,
    )
    loop._write_json(
        os.path.join(model_dir, "structure_final.json"), graph.structure(current_widths)
    )
    loop._write_operative_config(model_dir)  # again: now with the final schedule's bindings
    evaluation = phase.fit(dist_train, dist_eval, epochs, model_dir, log_every_steps, seed_cost)
    save_model_atomically(final_model, os.path.join(model_dir, "final_model.keras"))

    params, flops = counting.count_model(final_model)
    params_full, flops_full = counting.count_model(seed_model)
    summary = {
        "method": method,
        "model": seed_model.name,
        "dataset": dataset,
        "epochs": epochs,
        "steps": ledger.steps,
        "global_batch_size": global_batch_size,
        "eval_accuracy": float(evaluation["accuracy"]),
        "eval_loss": float(evaluation["loss"]),
        "params": params,
        "params_full": params_full,
        "flops": flops,
        "flops_full": flops_full,
        "train_flops": ledger.train_flops,
        "train_flops_full": ledger.train_flops_full,
        "train_cost_savings": ledger.train_flops_full / ledger.train_flops,
        "wall_time_s": time.time() - start_time,
        "architecture": graph.structure(current_widths),
        "blocks": {},
        "num_compiles": ledger.num_traces,
        "budget_target": settings.target_fraction,
        "budget_metric": "params" if resource == "size" else "flops",
        "width_multiplier": multiplier,
        "morphnet": {
            "regularizer": resource,
            "strength": settings.strength if method == "morphnet" else None,
            "gamma_threshold": settings.gamma_threshold,
            "num_iterations": len(iterations),
            "target_fraction": settings.target_fraction,
            "target_cost": target,
            "seed_cost": seed_cost,
            "final_cost": graph.cost(current_widths, resource),
            "iterations": iterations,
            "fixed_groups": graph.fixed_groups,
        },
    }
    loop._write_json(os.path.join(model_dir, "summary.json"), summary)
    return summary


def _to_seed_order(seed_graph, graph, widths):
    """Widths of a rebuilt model's groups, in the seed graph's group order (matched by name)."""
    by_name = graph.group_widths_by_name(widths)
    return np.array([by_name[name] for name in seed_graph.group_names], np.int64)


def save_model_atomically(model, path):
    """model.save to a temporary name in the same directory, then rename over `path`."""
    temporary = os.path.join(os.path.dirname(path), ".tmp_" + os.path.basename(path))
    model.save(temporary)
    tf.io.gfile.rename(temporary, path, overwrite=True)
