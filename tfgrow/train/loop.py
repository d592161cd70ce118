"""`train`: the gin-configurable root of every tfgrow run (growing or full-width training).

The launcher parses gin files and calls `train(model_dir=...)`; library code reads no flags.
Per step: sample, run the compact step, accumulate training FLOPs. Every `Budget.update_steps`
steps: refresh lambda from the cost of H(s). Per epoch: evaluate H(s) on the test split, log to
the console and TensorBoard, checkpoint. At the end: `summary.json`.
"""

import importlib
import json
import math
import os
import time

import gin
import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds
from absl import logging

from tfgrow import data as data_lib
from tfgrow.baselines import random_sampling
from tfgrow.budget import Budget
from tfgrow.masks import RELAXATIONS, TEMPERATURE_MODES, Temperature
from tfgrow.plots import run as plots_lib
from tfgrow.train import reporting, validation
from tfgrow.train import strategy as strategy_lib
from tfgrow.train.capacity import CapacityPlanner
from tfgrow.train.checkpoint import RunCheckpoints, WallClock, make_checkpoint, skip_epochs
from tfgrow.train.progress import Progress, describe_run
from tfgrow.train.run_directory import RunDirectory
from tfgrow.train.strategy import make_strategy
from tfgrow.train.trainer import Trainer

MORPHNET_METHODS = ("morphnet", "width_multiplier")  # run by tfgrow.morphnet.run
# Baselines on stock Keras models, each run by tfgrow.baselines.<method> (METHOD.md §1.9).
PLAIN_BASELINES = ("uniform", "direct_design", "l1_pruning", "magnitude_pruning")
# "random" is the growing trainer with fixed probabilities (tfgrow.baselines.random_sampling).
METHODS = ("grow", "full", "random") + MORPHNET_METHODS + PLAIN_BASELINES
# Methods whose model_fn builds a tfgrow GrowingNetwork (direct design rebuilds its source's).
NETWORK_METHODS = ("grow", "full", "random", "direct_design")
SCHEDULES = ("cosine", "step", "constant")


class NonFiniteLossError(FloatingPointError):
    """Raised when a training step's loss is NaN or infinite."""


@gin.configurable(module="tfgrow")
def learning_rate_schedule(total_steps, base=0.1, kind="cosine", boundaries=(0.5, 0.75), decay=0.1):
    """A Keras learning-rate schedule over `total_steps`.

    Args:
        total_steps: steps of the whole run.
        base: initial learning rate.
        kind: "cosine" (to 0 at the end), "step" (times `decay` at each fraction in
            `boundaries` of the run) or "constant".
        boundaries: fractions of the run where the step schedule decays.
        decay: the step schedule's factor.
    """
    if kind not in SCHEDULES:
        raise ValueError(f"Expected schedule kind in {SCHEDULES}. Received: kind={kind!r}")
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(base, max(1, total_steps))
    if kind == "step":
        steps = [int(b * total_steps) for b in boundaries]
        values = [base * decay**i for i in range(len(steps) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(steps, values)
    return lambda step: tf.constant(base, tf.float32)


@gin.configurable(module="tfgrow", denylist=["model_dir"])
def train(
    model_dir,
    model_fn=gin.REQUIRED,
    dataset=gin.REQUIRED,
    method="grow",
    epochs=10,
    global_batch_size=128,
    learning_rate=0.1,
    schedule="cosine",
    momentum=0.9,
    weight_decay=5e-4,
    mask_learning_rate=None,
    mask_momentum=0.9,
    temperature_mode="structure",
    beta0=1.0,
    final_temperature=200.0,
    relaxation="sigmoid",
    seed=0,
    data_dir=None,
    max_train_examples=None,
    max_eval_examples=None,
    log_every_steps=50,
    mock_data_if_missing=False,
    channel_multiple=8,
    jit_compile=False,
    static_capacities=None,
    capacity_sigmas=4.0,
    capacity_headroom=1.0,
    strategy=None,
):
    """Trains one network and writes checkpoints, TensorBoard events and `summary.json`.

    Args:
        model_dir: output directory (from the launcher's --model_dir).
        model_fn: builder `(input_shape, num_classes, growing=...) -> GrowingNetwork`, e.g.
            `@tfgrow.models.resnet_cifar`.
        dataset: tfds name, e.g. "fashion_mnist" or "cifar10".
        method: "grow" (METHOD.md §1), "full" (the same network at full width, no masks),
            "morphnet" (METHOD.md §2, settings in tfgrow.MorphNet; model_fn builds a plain Keras
            functional model) or "width_multiplier" (its uniform baseline), or a baseline of
            METHOD.md §1.9: "random" (growing with fixed probabilities), "uniform",
            "direct_design", "l1_pruning", "magnitude_pruning" (tfgrow/baselines/). The MorphNet
            methods and the plain baselines use the arguments up to data loading and the
            strategy; the growing ones are ignored.
        epochs: training epochs T (also sets gamma = final_temperature ** (1 / T)).
        global_batch_size: examples per step over all replicas.
        learning_rate, schedule: weight learning rate and its schedule ("cosine", "step",
            "constant").
        momentum, weight_decay: weight optimiser settings.
        mask_learning_rate: base learning rate of the logits, on the weights' schedule kind;
            None uses the weights' learning rate.
        mask_momentum: logit momentum.
        temperature_mode, beta0, final_temperature: METHOD.md §1.4.
        relaxation: "sigmoid" or "gumbel".
        seed: seed of initialisation, data order and mask sampling.
        data_dir: tfds data directory (may be gs://).
        max_train_examples, max_eval_examples: truncate the splits (tiny runs).
        log_every_steps: console and TensorBoard logging interval.
        mock_data_if_missing: when the dataset is not prepared locally, train on random data
            of its shape (`tfds.testing.mock_data`) instead of stopping; for smoke runs only.
        channel_multiple: compute each group's active channels rounded up to this multiple
            (extra channels carry mask 0; they are not counted or updated). 8 measured fastest
            on oneDNN CPUs: the main job's grown ResNet-20 steps in 113 ms at 8, 115-119 ms at 4
            and about 121 ms at 1 (its full network: 140 ms). Multiples of 4 let batch norm run
            as one fused op (`tfgrow.compact.fuses_batch_norm`); exact widths stay unfused.
            Under XLA it is the capacity ladder's step: `configs/modes/xla.gin` sets 4 (finer
            capacities measured faster), `configs/modes/tpu.gin` 128 (TPU lanes).
        jit_compile: compile the training and evaluation steps with XLA
            (`configs/modes/xla.gin`); implies static capacities.
        static_capacities: run every channel group at a capacity from a small ladder,
            re-chosen between epochs (`tfgrow/train/capacity.py`); None follows `jit_compile`.
            Without XLA this keeps shapes stable, so oneDNN does not re-plan every step.
        capacity_sigmas, capacity_headroom: a capacity holds (mean + sigmas * std of a step's
            count, or the largest count seen last epoch if larger) * headroom.
        strategy: a `tf.distribute.Strategy`; None builds one with `make_strategy()`.

    Returns:
        The summary dict (also written to `model_dir/summary.json`).
    """
    arguments = dict(locals())  # the run's settings, recorded in and compared with model_dir
    validation.check_train_arguments(
        dict(arguments), METHODS, SCHEDULES, RELAXATIONS, TEMPERATURE_MODES
    )
    builder_name = getattr(model_fn, "__name__", "model_fn")
    if method != "magnitude_pruning":  # it builds a tf_keras (Keras 2) model with model_fn
        model_fn = validation.checked_builder(model_fn, growing_network=method in NETWORK_METHODS)
    strategy = strategy or make_strategy()
    num_train = validation.check_dataset_split(
        dataset, data_dir, global_batch_size, max_train_examples, mock_data_if_missing, strategy
    )
    run_directory = RunDirectory(model_dir, strategy_lib.output_dir(strategy, model_dir))
    run_directory.claim(arguments)  # a directory holding another run stops here, untouched
    if method in MORPHNET_METHODS + PLAIN_BASELINES:
        if num_train:
            describe_run(
                method,
                builder_name,
                dataset,
                epochs,
                num_train // global_batch_size,
                global_batch_size,
                strategy.num_replicas_in_sync,
            )
        from tfgrow.morphnet import run as morphnet_run

        runner = (
            morphnet_run.run
            if method in MORPHNET_METHODS
            else importlib.import_module(f"tfgrow.baselines.{method}").run
        )
        return runner(
            model_dir=model_dir,
            method=method,
            model_fn=model_fn,
            dataset=dataset,
            epochs=epochs,
            global_batch_size=global_batch_size,
            learning_rate=learning_rate,
            schedule=schedule,
            momentum=momentum,
            weight_decay=weight_decay,
            seed=seed,
            data_dir=data_dir,
            max_train_examples=max_train_examples,
            max_eval_examples=max_eval_examples,
            log_every_steps=log_every_steps,
            mock_data_if_missing=mock_data_if_missing,
            strategy=strategy,
            run_directory=run_directory,
        )
    growing = method in ("grow", "random")
    budget = Budget()
    temperature = Temperature(beta0, final_temperature, temperature_mode, float(epochs))
    keras.utils.set_random_seed(seed)

    info, train_data, eval_data = _load_data(
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
    total_steps = steps_per_epoch * epochs

    with strategy.scope():
        model = model_fn(info.input_shape, info.num_classes, growing=growing)
        model.channel_multiple = int(channel_multiple)
        if method == "random":  # every structure drawn with p = the budget target; logits frozen
            random_sampling.prepare(model, budget.target, seed)
            mask_learning_rate = 0.0
        weight_schedule = learning_rate_schedule(total_steps, learning_rate, schedule)
        mask_schedule = (
            weight_schedule
            if mask_learning_rate is None
            else learning_rate_schedule(total_steps, mask_learning_rate, schedule)
        )
        trainer = Trainer(
            model,
            strategy,
            global_batch_size,
            steps_per_epoch,
            weight_schedule,
            mask_schedule,
            temperature,
            momentum,
            weight_decay,
            mask_momentum=mask_momentum,
            relaxation=relaxation,
            seed=seed,
            budget=budget,
            jit_compile=jit_compile,
        )
    if static_capacities is None:
        # XLA needs static shapes; TPUStrategy compiles with XLA whatever jit_compile says.
        static_capacities = jit_compile or isinstance(strategy, tf.distribute.TPUStrategy)
    planner = (
        CapacityPlanner(model, temperature, capacity_sigmas, capacity_headroom)
        if static_capacities and growing
        else None
    )
    # The chief writes to model_dir; other multi-worker processes to model_dir/workers/<task>
    # and resume from the chief's checkpoints.
    write_dir = strategy_lib.output_dir(strategy, model_dir)
    tf.io.gfile.makedirs(write_dir)
    clock = WallClock()  # checkpointed: wall_time_s adds up over resumes
    checkpoints = RunCheckpoints(
        make_checkpoint(model, trainer),
        os.path.join(write_dir, "checkpoints"),
        restore_directory=os.path.join(model_dir, "checkpoints"),
        clock=clock,
    )
    restored = checkpoints.restore()
    if restored:
        logging.info("Resumed from %s at step %d", restored, int(trainer.read("step")))
        if planner:
            planner.load_state(tf.convert_to_tensor(trainer.capacity_state).numpy())
    _write_operative_config(write_dir)
    run_directory.record()

    describe_run(
        method,
        model.name,
        dataset,
        epochs,
        steps_per_epoch,
        global_batch_size,
        strategy.num_replicas_in_sync,
    )
    progress = Progress(epochs, steps_per_epoch, log_every_steps)
    writer = tf.summary.create_file_writer(os.path.join(write_dir, "train"))
    dist_train = strategy.experimental_distribute_dataset(train_data)
    dist_eval = strategy.experimental_distribute_dataset(eval_data)
    full_params, full_flops = model.full_cost()
    start_time = time.time()
    start_epoch = int(trainer.read("step")) // steps_per_epoch
    skip_epochs(dist_train, start_epoch)  # the resumed epoch sees the data order it would have
    evaluation = {}
    step = trainer.read("step")  # mirrored on the host; no device read per step
    if growing:
        reporting.log_architecture(writer, model, trainer, budget, step)
    for epoch in range(start_epoch, epochs):
        totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
        capacities = planner.plan(epoch) if planner else None
        progress.start_epoch(epoch)
        for batch in dist_train:
            results = {k: v.numpy() for k, v in trainer.train_step(batch, capacities).items()}
            if planner:
                planner.observe(results)
            if not math.isfinite(results["loss_sum"]):
                raise NonFiniteLossError(
                    f"Non-finite training loss at step {step} (epoch {epoch}): "
                    f"{results['loss_sum']}. Stopped before saving: the last good checkpoint "
                    f"is {checkpoints.latest or 'none (no epoch finished)'}. Lower the learning "
                    f"rate (received learning_rate={learning_rate}) or check the input data."
                )
            for key in totals:
                totals[key] += results[key]
            step += 1
            details = None
            if step % log_every_steps == 0:
                details = reporting.log_step(writer, model, trainer, budget, step, results)
                if growing:
                    reporting.log_architecture(writer, model, trainer, budget, step)
            progress.update(int(step), reporting.step_values(results), details)
        eval_capacities = planner.eval_capacities() if planner else None
        evaluation = evaluate(trainer, dist_eval, eval_capacities)
        if planner:
            trainer.capacity_state.assign(planner.state())
        checkpoints.save(trainer.read("step"))
        values = reporting.log_epoch(writer, model, trainer, totals, evaluation)
        progress.end_epoch(epoch, int(trainer.read("step")), values, time.time() - start_time)
        if growing:
            reporting.log_architecture(writer, model, trainer, budget, step)
            plots_lib.log_run_images(writer, write_dir, step)
    if not evaluation:  # killed after the last checkpoint, before summary.json: resumed at the end
        evaluation = evaluate(trainer, dist_eval, planner.eval_capacities() if planner else None)
    run = {
        "method": method,
        "dataset": dataset,
        "epochs": epochs,
        "global_batch_size": global_batch_size,
        "num_replicas": strategy.num_replicas_in_sync,
        "jit_compile": bool(jit_compile),
    }
    if planner:
        run["capacity_overflows"] = planner.overflow_steps
        run["capacity_dropped"] = planner.dropped
        run["capacities"] = planner.history[-1] if planner.history else {}
    summary = reporting.summary(model, trainer, budget, run, evaluation, clock.seconds())
    _write_json(os.path.join(write_dir, "summary.json"), summary)
    if growing:
        plots_lib.write_run_plots(write_dir)  # write_dir/plots/*.png
    if write_dir != model_dir:
        tf.io.gfile.rmtree(os.path.join(write_dir, "checkpoints"))  # only the chief's are kept
    return summary


def _load_data(dataset, data_dir, batch_size, seed, max_train, max_eval, mock_if_missing):
    """(info, train dataset, eval dataset); falls back to mock data only when asked to."""

    def load():
        info = data_lib.dataset_info(dataset, data_dir=data_dir)
        train_data = data_lib.load_dataset(
            dataset,
            "train",
            batch_size=batch_size,
            data_dir=data_dir,
            seed=seed,
            max_examples=max_train,
        )
        eval_data = data_lib.load_dataset(
            dataset,
            data_lib.eval_split(dataset),
            batch_size=batch_size,
            data_dir=data_dir,
            max_examples=max_eval,
        )
        return info, train_data, eval_data

    try:
        return load()
    except data_lib.DatasetNotFoundError:
        if not mock_if_missing:
            raise
    logging.warning(
        "Dataset %r is not prepared locally: training on RANDOM mock data of its shape "
        "(tfgrow.train.mock_data_if_missing=True). Results mean nothing.",
        dataset,
    )
    with tfds.testing.mock_data(num_examples=max(max_train or 0, max_eval or 0, 2 * batch_size)):
        return load()


def evaluate(trainer, dist_eval, capacities=None):
    """Accuracy and loss of H(s) over a distributed dataset."""
    totals = {"loss_sum": 0.0, "correct": 0.0, "count": 0.0}
    for batch in dist_eval:
        for key, value in trainer.eval_step(batch, capacities).items():
            totals[key] += float(value)
    count = max(totals["count"], 1.0)
    return {"accuracy": totals["correct"] / count, "loss": totals["loss_sum"] / count}


def _write_operative_config(model_dir):
    with tf.io.gfile.GFile(os.path.join(model_dir, "operative_config.gin"), "w") as f:
        f.write(gin.config_str())


def _write_json(path, payload):
    """Writes JSON atomically (a temporary file renamed over the target); non-finite numbers
    (NaN, inf) are written as null, so every JSON reader can read the file."""
    temporary = path + ".tmp"
    with tf.io.gfile.GFile(temporary, "w") as f:
        json.dump(json_safe(payload), f, indent=2, sort_keys=True, allow_nan=False)
    tf.io.gfile.rename(temporary, path, overwrite=True)


def json_safe(value):
    """`value` with numpy scalars as Python numbers and non-finite floats as None."""
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"Cannot serialise {type(value).__name__} to JSON")
