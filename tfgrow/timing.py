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

from tfgrow.train.optimizer import MaskedMomentum


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


def stock_step(model, jit_compile=False, learning_rate=1e-3):
    """A `tf.function` training step of a stock Keras classifier: loss, gradient, momentum SGD.

    The same optimiser code as the growing trainer (`MaskedMomentum`, dense update), so the two
    differ only in what the network computes.

    Args:
        model: a Keras model mapping images to logits.
        jit_compile: compile the step with XLA.
        learning_rate: the (constant) learning rate.

    Returns:
        `step(batch) -> loss`, batch = (images, integer labels).
    """
    variables = model.trainable_variables
    optimizer = MaskedMomentum(variables, 0.9, 5e-4, name="stock")

    @tf.function(jit_compile=jit_compile)
    def step(batch):
        images, labels = batch
        with tf.GradientTape() as tape:
            logits = tf.cast(model(images, training=True), tf.float32)  # mixed policies
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        gradients = tape.gradient(loss, variables)
        for variable, value in optimizer.step(gradients, learning_rate):
            variable.assign(value)
        return loss

    return step
