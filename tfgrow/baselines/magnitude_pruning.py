"""Magnitude pruning with tensorflow-model-optimization (Zhu and Gupta 2017), as tfmot does it.

tfmot's `prune_low_magnitude` wraps every conv and dense layer of the ResNet built in `tf_keras`
(Keras 2; tfmot does not support Keras 3), and zeroes the smallest-magnitude kernel weights on a
polynomial schedule from 0 to the sparsity that leaves `tfgrow.Budget.target` of the params
nonzero (`kernel_sparsity_for`) over the first `end_fraction` of training. Zeroed weights keep
their place in dense kernels, so the network is as expensive as before: the summary measures this
rather than asserting it.

- `params`: the nonzero trainable weights (what the sparsity removes); `params_dense` all of them.
- `flops`: counted on the pruned model with its dense kernels (copied into the Keras 3 model of
  the same builder, checked to compute the same outputs): equal to `flops_full`.
  `flops_nonzero_kernels` is what kernels that skip zeros would cost, which dense CPU/GPU/TPU
  kernels do not do.
- `train_flops`: every step runs the dense kernels, so `train_cost_savings` is 1.
- `step_time_pruned_s` / `step_time_unpruned_s`: training steps of the pruning-wrapped model and
  of the same unpruned network, timed side by side on one batch (medians of interleaved rounds);
  `saves_training_time` is True only when the pruned step is over 5% faster (timing noise).

tensorflow_model_optimization and tf_keras are imported here only, inside `run`.
"""

import statistics
import time

import gin
import numpy as np
import tensorflow as tf
from absl import logging

from tfgrow.budget import Budget
from tfgrow.graph import analysis as graph_lib
from tfgrow.graph import counting
from tfgrow.train import plain
from tfgrow.train.schedules import learning_rate_schedule


@gin.configurable(module="tfgrow")
class MagnitudePruning:
    """Magnitude-pruning settings (`tfgrow.MagnitudePruning.*` in gin).

    Args:
        end_fraction: the sparsity schedule reaches its final value at this fraction of the
            training steps (tfmot's `end_step`), then holds it.
        num_updates: mask updates over the schedule (tfmot's `frequency` = its steps / this).
        timing_rounds: interleaved rounds of the step-time comparison.
        timing_steps: training steps per model and round.
    """

    def __init__(self, end_fraction=0.75, num_updates=20, timing_rounds=10, timing_steps=5):
        if not 0.0 < end_fraction <= 1.0:
            raise ValueError(
                f"Expected tfgrow.MagnitudePruning.end_fraction in (0, 1]. Received: {end_fraction}"
            )
        if min(num_updates, timing_rounds, timing_steps) < 1:
            raise ValueError(
                "Expected num_updates, timing_rounds and timing_steps >= 1. Received: "
                f"{num_updates}, {timing_rounds}, {timing_steps}"
            )
        self.end_fraction = float(end_fraction)
        self.num_updates = int(num_updates)
        self.timing_rounds = int(timing_rounds)
        self.timing_steps = int(timing_steps)


def _tf_keras_schedule(tf_keras, schedule):
    """A Keras 3 learning-rate schedule (`tfgrow.train.schedules`) as a tf_keras one."""

    class Schedule(tf_keras.optimizers.schedules.LearningRateSchedule):
        def __call__(self, step):
            return tf.cast(schedule(step), tf.float32)

        def get_config(self):
            return {}

    return Schedule()


def _compile(tf_keras, model, baseline, total_steps):
    weight_decay = float(baseline.weight_decay)
    variables = [v for v in model.trainable_weights if "kernel" in v.name]
    model.add_loss(lambda: 0.5 * weight_decay * tf.add_n([tf.reduce_sum(v * v) for v in variables]))
    schedule = learning_rate_schedule(total_steps, baseline.learning_rate, baseline.schedule)
    optimizer = tf_keras.optimizers.SGD(
        _tf_keras_schedule(tf_keras, schedule), momentum=baseline.momentum
    )
    model.compile(
        optimizer,
        loss=tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def _build_tf_keras(baseline, tf_keras):
    info = baseline.info
    try:
        return baseline.model_fn(info.input_shape, info.num_classes, keras_module=tf_keras)
    except TypeError as error:
        raise ValueError(
            "Expected a model builder that takes keras_module (magnitude pruning builds the "
            "network in tf_keras for tensorflow-model-optimization), e.g. "
            f"@tfgrow.models.keras_resnet_cifar. Received: {baseline.model_fn} ({error})"
        ) from error


def _to_keras3(baseline, tf_keras_model):
    """The Keras 3 model of the same builder holding `tf_keras_model`'s weights, checked."""
    info = baseline.info
    model = baseline.model_fn(info.input_shape, info.num_classes)
    for layer in model.layers:
        if layer.weights:
            layer.set_weights(tf_keras_model.get_layer(layer.name).get_weights())
    images = next(iter(baseline.eval_data))[0]
    difference = np.max(np.abs(model(images).numpy() - tf_keras_model(images).numpy()))
    if difference > 1e-3:
        raise RuntimeError(f"The Keras 3 copy differs from the tf_keras model by {difference}")
    return model


def _step_times(models, batch, options):
    """Median seconds per training step of each model, timed in interleaved rounds."""
    images, labels = batch
    times = [[] for _ in models]
    for model in models:
        model.train_on_batch(images, labels)  # trace and warm up outside the timing
    for _ in range(options.timing_rounds):
        for index, model in enumerate(models):
            start = time.perf_counter()
            for _ in range(options.timing_steps):
                model.train_on_batch(images, labels)
            times[index].append((time.perf_counter() - start) / options.timing_steps)
    return [statistics.median(t) for t in times]


def kernel_sparsity_for(model, target):
    """The conv/dense kernel sparsity that leaves `target` of `model`'s params nonzero.

    Biases and BN gamma/beta are not pruned, so the kernels give up a little more than
    1 - target of their weights.
    """
    params = counting.count_model(model)[0]
    kernels = sum(int(np.prod(layer.kernel.shape)) for layer in model.layers if _prunable(layer))
    kept = target * params - (params - kernels)
    if kept <= 0:
        raise ValueError(
            f"Expected a budget above the unprunable params ({params - kernels} of {params}: "
            f"biases and BN). Received: tfgrow.Budget.target={target}"
        )
    return 1.0 - kept / kernels


def _prunable(layer):
    return counting.layer_flops(layer) > 0 and hasattr(layer, "kernel")


def _sparse_flops(model):
    """FLOPs per example if conv/dense kernels skipped their zero weights."""
    total = 0
    for layer in model.layers:
        flops = counting.layer_flops(layer)
        if flops:
            kernel = layer.kernel.numpy()
            total += flops * np.count_nonzero(kernel) / kernel.size
    return int(round(total))


def _train_pruned(sparsity, tf_keras, baseline, final_sparsity, options):
    """The tf_keras network wrapped by `prune_low_magnitude`, trained with its schedule."""
    total_steps = baseline.steps_per_epoch * baseline.epochs
    end_step = max(1, int(options.end_fraction * total_steps))
    schedule = sparsity.PolynomialDecay(
        initial_sparsity=0.0,
        final_sparsity=final_sparsity,
        begin_step=0,
        end_step=end_step,
        frequency=max(1, end_step // options.num_updates),
    )
    pruned = sparsity.prune_low_magnitude(
        _build_tf_keras(baseline, tf_keras), pruning_schedule=schedule
    )
    _compile(tf_keras, pruned, baseline, total_steps)
    log = tf_keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: logging.info(
            "magnitude_pruning epoch %d  train_loss %.4f  train_acc %.4f",
            epoch + 1,
            logs["loss"],
            logs["accuracy"],
        )
    )
    pruned.fit(
        baseline.train_data,
        epochs=baseline.epochs,
        callbacks=[sparsity.UpdatePruningStep(), log],
        verbose=0,
    )
    return pruned


def run(**settings):
    """One magnitude-pruning run; `settings` are `tfgrow.train.train`'s; returns the summary."""
    import tensorflow_model_optimization as tfmot
    import tf_keras

    options = MagnitudePruning()
    budget = Budget()
    if budget.metric != "params" or budget.target is None:
        raise ValueError(
            "Expected tfgrow.Budget.metric='params' with a target for magnitude pruning (it "
            f"removes weights, not FLOPs). Received: metric={budget.metric!r}, "
            f"target={budget.target}"
        )
    baseline = plain.PlainRun(**settings)
    total_steps = baseline.steps_per_epoch * baseline.epochs
    full_model = baseline.model_fn(baseline.info.input_shape, baseline.info.num_classes)
    final_sparsity = kernel_sparsity_for(full_model, float(budget.target))
    sparsity = tfmot.sparsity.keras
    pruned = _train_pruned(sparsity, tf_keras, baseline, final_sparsity, options)
    eval_loss, eval_accuracy = pruned.evaluate(baseline.eval_data, verbose=0)
    steps = int(pruned.optimizer.iterations.numpy())
    num_traces = pruned.train_function.experimental_get_tracing_count()
    model = _to_keras3(baseline, sparsity.strip_pruning(pruned))
    params_dense, flops = counting.count_model(model)
    nonzero = sum(int(np.count_nonzero(v.numpy())) for v in model.trainable_variables)
    ledger = baseline.new_ledger(full_model)
    ledger.add_steps(steps, flops)  # the pruned network trains with its dense kernels
    ledger.num_traces = num_traces
    unpruned = _build_tf_keras(baseline, tf_keras)
    _compile(tf_keras, unpruned, baseline, total_steps)
    pruned_time, unpruned_time = _step_times(
        [pruned, unpruned], next(iter(baseline.train_data)), options
    )
    logging.info(
        "magnitude pruning: nonzero params %d of %d, FLOPs %d (dense kernels), step %.1f ms "
        "pruned vs %.1f ms unpruned",
        nonzero,
        params_dense,
        flops,
        1e3 * pruned_time,
        1e3 * unpruned_time,
    )
    graph = graph_lib.analyze(model)
    return baseline.write_summary(
        model,
        full_model,
        ledger,
        {"accuracy": eval_accuracy, "loss": eval_loss},
        graph.structure(graph.full_widths()),
        {},
        params=nonzero,  # overrides the dense count: the weights the sparsity keeps
        budget_target=budget.target,
        budget_metric=budget.metric,
        magnitude_pruning={
            "final_sparsity": final_sparsity,
            "params_dense": params_dense,
            "flops_dense_kernels": flops,
            "flops_nonzero_kernels": _sparse_flops(model),
            "saves_flops": flops < counting.count_model(full_model)[1],
            "step_time_pruned_s": pruned_time,
            "step_time_unpruned_s": unpruned_time,
            "step_time_ratio": pruned_time / unpruned_time,
            "saves_training_time": pruned_time < 0.95 * unpruned_time,
        },
    )
