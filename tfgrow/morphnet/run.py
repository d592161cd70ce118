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
import tensorflow as tf
from absl import logging

import tfgrow.morphnet.checkpoints as checkpoints_lib
import tfgrow.morphnet.expand as expand_lib
import tfgrow.morphnet.phase as phase_lib
from tfgrow.data.run_data import load_run_data
from tfgrow.graph import analysis as graph_lib
from tfgrow.graph import counting, slicing
from tfgrow.morphnet.regularizers import GammaRegularizer, check_regularizable
from tfgrow.precision import policy_name
from tfgrow.train.checkpoint import WallClock, skip_epochs
from tfgrow.train.run_directory import write_json, write_operative_config
from tfgrow.train.saving import save_model_atomically
from tfgrow.train.schedules import optimizer_learning_rate
from tfgrow.train.strategy import make_strategy

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
    Every epoch of every phase is checkpointed; a killed run resumes where it stopped.
    """
    settings = _checked_settings(method, epochs, global_batch_size)
    strategy = strategy or make_strategy()
    clock = WallClock()
    keras.utils.set_random_seed(seed)
    tf.io.gfile.makedirs(model_dir)
    info, train_data, eval_data = load_run_data(
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
    with strategy.scope():
        seed_model = model_fn(info.input_shape, info.num_classes)
    if method == "morphnet":
        check_regularizable(seed_model)  # before any data is read or step taken
    graph, seed_cost, target = _analyse_seed(seed_model, settings)  # checks the target
    seed_widths = graph.full_widths()
    write_operative_config(model_dir)
    run_directory.record()
    options = dict(
        global_batch_size=global_batch_size,
        momentum=momentum,
        weight_decay=weight_decay,
        log_every_steps=log_every_steps,
        seed_cost=seed_cost,
    )
    ledger = phase_lib.Ledger(global_batch_size, graph.cost(seed_widths, "flops"))
    phases = _Phases(model_dir, strategy, train_data, eval_data, ledger, clock, options)
    current_widths, multiplier = _learned_or_uniform_widths(
        method, phases, settings, seed, seed_model, graph, epochs, learning_rate, target
    )
    final_index = settings.num_iterations if method == "morphnet" else 0  # phases before it
    rate = optimizer_learning_rate(steps_per_epoch * epochs, learning_rate, schedule)
    final_model, evaluation = _train_final(
        phases, final_index, seed_model, graph, current_widths, seed, rate, epochs
    )
    run = {
        "method": method,
        "dataset": dataset,
        "epochs": epochs,
        "global_batch_size": global_batch_size,
        "width_multiplier": multiplier,
        "dtype_policy": policy_name(final_model),
    }
    summary = _summary(
        run, settings, seed_model, final_model, graph, current_widths, target, phases, evaluation
    )
    write_json(os.path.join(model_dir, "summary.json"), summary)
    return summary


def _checked_settings(method, epochs, global_batch_size):
    """The gin-configured `MorphNet` settings, checked against the run's method and sizes."""
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
    return settings


def _train_final(phases, index, seed_model, graph, widths, seed, rate, epochs):
    """Builds the final network at `widths`, trains it (phase `index`) from scratch and saves it;
    (the final model, its evaluation)."""
    keras.utils.set_random_seed(seed + 1)  # the final network starts from a fresh initialisation
    with phases.strategy.scope():
        final_model = slicing.build_at_widths(seed_model, graph, widths)
    model_dir = phases.model_dir
    write_json(os.path.join(model_dir, "structure_final.json"), graph.structure(widths))
    write_operative_config(model_dir)  # again: now with the final schedule's bindings
    evaluation = phases.train(index, "train", final_model, rate, epochs, widths)
    save_model_atomically(final_model, os.path.join(model_dir, "final_model.keras"))
    return final_model, evaluation


def _analyse_seed(seed_model, settings):
    """(channel graph, seed cost, target cost) of the seed; stops on an unreachable target."""
    graph = graph_lib.analyze(seed_model)
    resource = settings.regularizer
    seed_cost = graph.cost(graph.full_widths(), resource)
    target = settings.target_fraction * seed_cost
    expand_lib.check_target(graph, target, resource)  # before any training
    _log_seed(seed_model, graph, resource, seed_cost, target)
    return graph, seed_cost, target


def _log_seed(seed_model, graph, resource, seed_cost, target):
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


class _Phases:
    """Trains a run's phases in turn, checkpointing each epoch; resumes a killed run.

    Phases are numbered in the order they run (shrink iterations 0..n-1, then the final
    training). A resumed run skips the phases its progress says are done (their results are in
    the progress) and restores the phase it stopped in.
    """

    def __init__(self, model_dir, strategy, train_data, eval_data, ledger, clock, options):
        self.model_dir = model_dir
        self.strategy = strategy
        self.dist_train = strategy.experimental_distribute_dataset(train_data)
        self.dist_eval = strategy.experimental_distribute_dataset(eval_data)
        self.ledger = ledger
        self.options = options
        self.checkpoints = checkpoints_lib.PhaseCheckpoints(
            os.path.join(model_dir, "checkpoints"), clock
        )
        self.clock = clock
        self.progress = self.checkpoints.restore_progress() or {
            "phase": 0,
            "phase_epochs": 0,
            "run_epochs": 0,
            "iterations": [],
            "evaluation": None,
        }
        if self.checkpoints.resume_path:
            self.ledger.load(self.progress["ledger"])
            logging.info(
                "Resumed from %s at phase %d, epoch %d",
                self.checkpoints.resume_path,
                self.progress["phase"],
                self.progress["phase_epochs"],
            )
        # The training pipeline reshuffles per iterator: replay the epochs already run.
        skip_epochs(self.dist_train, self.progress["run_epochs"])

    @property
    def iterations(self):
        """The finished shrink iterations' results."""
        return self.progress["iterations"]

    def done(self, index):
        """Whether phase `index` finished before the checkpoint this run resumed from."""
        return index < self.progress["phase"]

    def widths(self, index, default):
        """The widths phase `index` was built at when it is the resumed phase, else `default`."""
        if self.progress["phase"] == index and "widths" in self.progress:
            return np.asarray(self.progress["widths"], np.int64)
        return default

    def train(self, index, name, model, rate, epochs, widths, regularizer=None, strength=0.0):
        """Trains (or resumes) phase `index` on `model` (built at `widths`); returns its eval."""
        options = self.options
        phase = phase_lib.Phase(
            name,
            model,
            self.strategy,
            options["global_batch_size"],
            rate,
            options["momentum"],
            options["weight_decay"],
            regularizer,
            strength,
            self.ledger,
        )
        resume = self.checkpoints.resume_path is not None and self.progress["phase"] == index
        self.checkpoints.attach(phase, resume)
        initial_epoch = self.progress["phase_epochs"] if resume else 0
        if not resume:
            self.progress.update(phase=index, phase_epochs=0, evaluation=None)
        self.progress["widths"] = [int(w) for w in widths]

        def after_epoch(epoch, evaluation):
            if regularizer is not None:  # the learned structure, every epoch
                path = os.path.join(self.model_dir, f"structure_iter{index}.json")
                alive = regularizer.alive_widths_numpy()
                write_json(path, regularizer.graph.structure(alive))
            self.progress.update(phase_epochs=epoch, evaluation=evaluation)
            self.progress["run_epochs"] += 1
            self.progress["ledger"] = self.ledger.state()
            self.checkpoints.save(self.progress, self.ledger.steps)

        return phase.fit(
            self.dist_train,
            self.dist_eval,
            epochs,
            self.model_dir,
            options["log_every_steps"],
            options["seed_cost"],
            after_epoch,
            initial_epoch=initial_epoch,
            evaluation=self.progress["evaluation"] if resume else None,
        )


def _learned_or_uniform_widths(
    method, phases, settings, seed, seed_model, graph, epochs, learning_rate, target
):
    """(widths, multiplier) of the final network: MorphNet's shrink -> expand iterations, or for
    "width_multiplier" the uniform multiplier of the seed that meets the target."""
    if method == "morphnet":
        return _shrink_and_expand(
            phases, settings, seed, seed_model, graph, epochs, learning_rate, target
        )
    resource = settings.regularizer
    multiplier, widths, _ = expand_lib.expand(graph, graph.full_widths(), target, resource)
    logging.info("uniform width multiplier x%.4f meets the target", multiplier)
    return widths, multiplier


def _shrink_and_expand(phases, settings, seed, seed_model, graph, epochs, learning_rate, target):
    """The shrink -> expand iterations (METHOD.md §2); returns (final widths, multiplier)."""
    resource = settings.regularizer
    shrink_epochs = max(1, round(settings.shrink_epochs_ratio * epochs))
    shrink_rate = settings.shrink_learning_rate or learning_rate
    seed_cost = graph.cost(graph.full_widths(), resource)
    current_widths = graph.full_widths()
    for iteration in range(settings.num_iterations):
        if phases.done(iteration):  # its result is in the resumed progress
            continue
        current_widths = phases.widths(iteration, current_widths)
        if iteration > 0:  # a fresh initialisation, the same whether resumed or not
            keras.utils.set_random_seed(seed + 1 + iteration)
        with phases.strategy.scope():
            model = (
                seed_model
                if iteration == 0
                else slicing.build_at_widths(seed_model, graph, current_widths)
            )
            regularizer = GammaRegularizer(
                model, graph_lib.analyze(model), resource, settings.gamma_threshold
            )
        evaluation = phases.train(
            iteration,
            f"shrink_iter{iteration}",
            model,
            shrink_rate,
            shrink_epochs,
            current_widths,
            regularizer,
            settings.strength,
        )
        learned = _to_seed_order(graph, regularizer.graph, regularizer.alive_widths_numpy())
        multiplier, expanded, expanded_cost = expand_lib.expand(graph, learned, target, resource)
        phases.iterations.append(
            {
                "iteration": iteration,
                "shrink_epochs": shrink_epochs,
                "shrink_eval_accuracy": evaluation["accuracy"],
                "learned_widths": graph.structure(learned),
                "learned_cost": int(graph.cost(learned, resource)),
                "multiplier": float(multiplier),
                "expanded_widths": graph.structure(expanded),
                "expanded_cost": int(expanded_cost),
            }
        )
        logging.info(
            "iteration %d: learned %s %d (%.1f%% of seed), x%.4f -> %d (%.1f%%)",
            iteration,
            resource,
            phases.iterations[-1]["learned_cost"],
            100.0 * phases.iterations[-1]["learned_cost"] / seed_cost,
            multiplier,
            expanded_cost,
            100.0 * expanded_cost / seed_cost,
        )
        current_widths = expanded
    current_widths = phases.widths(settings.num_iterations, current_widths)
    return current_widths, phases.iterations[-1]["multiplier"]


def _summary(run, settings, seed_model, final_model, graph, widths, target, phases, evaluation):
    """summary.json of a MorphNet or width-multiplier run (README.md, "What a run writes")."""
    resource = settings.regularizer
    uniform_multiplier, uniform_widths, _ = expand_lib.expand(
        graph, graph.full_widths(), target, resource
    )
    params, flops = counting.count_model(final_model)
    params_full, flops_full = counting.count_model(seed_model)
    ledger = phases.ledger
    return {
        **run,
        "model": seed_model.name,
        "steps": ledger.steps,
        "eval_accuracy": float(evaluation["accuracy"]),
        "eval_loss": float(evaluation["loss"]),
        "params": params,
        "params_full": params_full,
        "flops": flops,
        "flops_full": flops_full,
        "train_flops": ledger.train_flops,
        "train_flops_full": ledger.train_flops_full,
        "train_cost_savings": ledger.train_flops_full / ledger.train_flops,
        "wall_time_s": phases.clock.seconds(),
        "architecture": graph.structure(widths),
        "blocks": {},
        "num_compiles": ledger.num_traces,
        "budget_target": settings.target_fraction,
        "budget_metric": "params" if resource == "size" else "flops",
        "morphnet": {
            "regularizer": resource,
            "strength": settings.strength if run["method"] == "morphnet" else None,
            "gamma_threshold": settings.gamma_threshold,
            "num_iterations": len(phases.iterations),
            "target_fraction": settings.target_fraction,
            "target_cost": target,
            "seed_cost": graph.cost(graph.full_widths(), resource),
            "final_cost": graph.cost(widths, resource),
            "iterations": phases.iterations,
            "fixed_groups": graph.fixed_groups,
            # The naive baseline at the same target, for the plots' widths per layer.
            "seed_widths": graph.structure(graph.full_widths()),
            "uniform_multiplier": uniform_multiplier,
            "uniform_widths": graph.structure(uniform_widths),
        },
    }


def _to_seed_order(seed_graph, graph, widths):
    """Widths of a rebuilt model's groups, in the seed graph's group order (matched by name)."""
    by_name = graph.group_widths_by_name(widths)
    return np.array([by_name[name] for name in seed_graph.group_names], np.int64)
