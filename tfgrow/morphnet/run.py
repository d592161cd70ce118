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

import gin
import keras
import numpy as np
from absl import logging

from tfgrow.graph import analysis as graph_lib
from tfgrow.graph import slicing
from tfgrow.morphnet import expand as expand_lib
from tfgrow.morphnet import phase as phase_lib
from tfgrow.morphnet.regularizers import GammaRegularizer
from tfgrow.train import loop, plain

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


def run(**settings):
    """One MorphNet or width-multiplier run; `settings` are `tfgrow.train.train`'s; writes its
    outputs (`tfgrow.train.plain.PlainRun`) and returns the summary."""
    method, model_dir = settings["method"], settings["model_dir"]
    epochs, log_every_steps = settings["epochs"], settings["log_every_steps"]
    options = MorphNet()
    if method == "morphnet" and options.strength is None:
        raise ValueError(
            "Expected tfgrow.MorphNet.strength for method 'morphnet'. Received: None. Set e.g. "
            "--gin_bindings='tfgrow.MorphNet.strength=1e-8'"
        )
    baseline = plain.PlainRun(**settings)
    seed_model = baseline.build(
        baseline.model_fn, baseline.info.input_shape, baseline.info.num_classes
    )
    graph = graph_lib.analyze(seed_model)
    resource = options.regularizer
    seed_widths = graph.full_widths()
    seed_cost = graph.cost(seed_widths, resource)
    target = options.target_fraction * seed_cost
    expand_lib.check_target(graph, target, resource)  # before any training
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
    ledger = baseline.new_ledger(seed_model)
    iterations = []
    current_widths = seed_widths
    if method == "morphnet":
        shrink_epochs = max(1, round(options.shrink_epochs_ratio * epochs))
        shrink_rate = options.shrink_learning_rate or baseline.learning_rate
        for iteration in range(options.num_iterations):
            model = (
                seed_model
                if iteration == 0
                else baseline.build(slicing.build_at_widths, seed_model, graph, current_widths)
            )
            regularizer = baseline.build(
                GammaRegularizer,
                model,
                graph_lib.analyze(model),
                resource,
                options.gamma_threshold,
            )
            phase = phase_lib.Phase(
                f"shrink_iter{iteration}",
                model,
                baseline.strategy,
                baseline.global_batch_size,
                shrink_rate,
                baseline.momentum,
                baseline.weight_decay,
                regularizer,
                options.strength,
                ledger,
            )
            structure_path = os.path.join(model_dir, f"structure_iter{iteration}.json")

            def on_epoch(regularizer=regularizer, path=structure_path):
                widths = regularizer.alive_widths_numpy()
                loop._write_json(path, regularizer.graph.structure(widths))

            evaluation = phase.fit(
                baseline.dist_train,
                baseline.dist_eval,
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

    # The naive baseline at the same target, for the plots' widths per layer (tfgrow/plots/).
    uniform_multiplier, uniform_widths, _ = expand_lib.expand(graph, seed_widths, target, resource)
    keras.utils.set_random_seed(baseline.seed + 1)  # the final network: a fresh initialisation
    final_model = baseline.build(slicing.build_at_widths, seed_model, graph, current_widths)
    loop._write_json(
        os.path.join(model_dir, "structure_final.json"), graph.structure(current_widths)
    )
    loop._write_operative_config(model_dir)  # again: now with the final schedule's bindings
    evaluation = baseline.train(final_model, "train", epochs, ledger)
    return baseline.write_summary(
        final_model,
        seed_model,
        ledger,
        evaluation,
        graph.structure(current_widths),
        {},
        budget_target=options.target_fraction,
        budget_metric="params" if resource == "size" else "flops",
        width_multiplier=multiplier,
        morphnet={
            "regularizer": resource,
            "strength": options.strength if method == "morphnet" else None,
            "gamma_threshold": options.gamma_threshold,
            "num_iterations": len(iterations),
            "target_fraction": options.target_fraction,
            "target_cost": target,
            "seed_cost": seed_cost,
            "final_cost": graph.cost(current_widths, resource),
            "iterations": iterations,
            "fixed_groups": graph.fixed_groups,
            "seed_widths": graph.structure(seed_widths),
            "uniform_multiplier": uniform_multiplier,
            "uniform_widths": graph.structure(uniform_widths),
        },
    )


def _to_seed_order(seed_graph, graph, widths):
    """Widths of a rebuilt model's groups, in the seed graph's group order (matched by name)."""
    by_name = graph.group_widths_by_name(widths)
    return np.array([by_name[name] for name in seed_graph.group_names], np.int64)
