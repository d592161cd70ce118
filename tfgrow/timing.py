"""Timing training steps side by side on a shared machine.

`stock_step` is the training step of a stock Keras classifier that every timing uses (the
growing trainer's optimiser code, dense update). `time_interleaved` runs step functions in
rounds, one after the other, and reports each one's median: a machine whose load drifts by 2x
over minutes slows all of them alike, so compare the results as ratios. Used by the end-of-run
step timing (`tfgrow.train.step_timing`), the latency table (`tfgrow.latency`) and
`benchmarks/step_time.py`.
"""

import time

import numpy as np
import tensorflow as tf

from tfgrow.compact import tf_variable
from tfgrow.train.optimizer import MaskedMomentum, summed_slices


def time_interleaved(steps, batch, rounds, steps_per_round, warmup=2):
    """Median seconds per step of each named step function, rounds interleaved.

    Args:
        steps: name -> `step(batch)` returning a tensor.
        batch: the argument every step gets.
        rounds: rounds; each runs every function `steps_per_round` times.
        steps_per_round: steps per function per round.
        warmup: untimed steps per function first (tracing, oneDNN primitive creation).

    Returns:
        name -> median seconds per step.
    """
    for step in steps.values():
        for _ in range(warmup):
            float(step(batch))
    times = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(steps_per_round):
                result = step(batch)
            float(result)
            times[name].append((time.perf_counter() - start) / steps_per_round)
    return {name: float(np.median(values)) for name, values in times.items()}


def stock_step(model, jit_compile=False, learning_rate=1e-3, momentum=0.9, weight_decay=5e-4):
    """A `tf.function` training step of a stock Keras classifier: loss, gradient, momentum SGD.

    The same optimiser code as the growing trainer (`MaskedMomentum`, dense update; with
    `momentum=0, weight_decay=0`, plain SGD, an embedding's looked-up rows only, as the trainer
    does), so the two differ only in what the network computes.

    Args:
        model: a Keras model mapping images (or token ids) to logits.
        jit_compile: compile the step with XLA.
        learning_rate: the (constant) learning rate.
        momentum, weight_decay: the optimiser's.

    Returns:
        `step(batch) -> loss`, batch = (inputs, integer labels `[B]` or `[B, T]`).
    """
    variables = model.trainable_variables
    optimizer = MaskedMomentum(variables, momentum, weight_decay, name="stock")
    sparse = optimizer.plain_sgd and not jit_compile

    @tf.function(jit_compile=jit_compile)
    def step(batch):
        images, labels = batch
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)  # mixed policies
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        gradients = tape.gradient(loss, variables)
        rows = [
            (v, summed_slices(g))
            for v, g in zip(variables, gradients)
            if sparse and isinstance(g, tf.IndexedSlices)
        ]
        sparse_ids = {id(v) for v, _ in rows}
        gradients = [None if id(v) in sparse_ids else g for v, g in zip(variables, gradients)]
        for variable, value in optimizer.step(gradients, learning_rate):
            variable.assign(value)
        for variable, gradient in rows:
            for target, indices, values in optimizer.sparse_step(variable, gradient, learning_rate):
                tf_variable(target).scatter_nd_update(indices, values)
        return loss

    return step
