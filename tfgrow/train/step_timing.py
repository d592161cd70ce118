"""Measured training-step time of a run's final architecture and of its full network.

FLOPs do not predict time on real hardware: on this project's 2-core CPU the main job's grown
ResNet-20 has 38% of the full network's FLOPs, but its convolutions take 70% of the full
network's convolution time (widths round up to oneDNN's blocks of 8 and 16 channels, and stage 1
runs at its full 16 channels in most steps). So a growing run ends by timing, in its own process
and on its own device, one training step of two stock Keras models trained by the same step code:

- the final architecture H(s) (`tfgrow.export.plain_model`, what the export writes), and
- the full network (every structure kept),

interleaved over a few rounds, median per model. `summary.json` records both and their ratio
(`step_time_final_s`, `step_time_full_s`, `step_time_ratio`), next to the FLOPs ratio.

`stock_step` and `time_interleaved` are also what `benchmarks/step_time.py` times with.
"""

import time

import numpy as np
import tensorflow as tf

from tfgrow import export as export_lib
from tfgrow.train.optimizer import MaskedMomentum


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
            logits = model(images, training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, logits))
        gradients = tape.gradient(loss, variables)
        for variable, value in optimizer.step(gradients, learning_rate):
            variable.assign(value)
        return loss

    return step


def time_interleaved(steps, batch, rounds, steps_per_round, warmup=2):
    """Median seconds per step of each named step function, rounds interleaved.

    Interleaving puts every function under the same load (timing on a shared machine drifts
    by 2x over minutes): compare the results as ratios.

    Args:
        steps: name -> `step(batch)` returning a tensor.
        batch: the batch every step runs on.
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


def architecture_models(network, temperature, epoch):
    """{"full": the full network, "final": H(s) (growing networks only)} as stock Keras models."""
    models = {"full": export_lib.full_plain_model(network)}
    if network.growing:
        models["final"] = export_lib.plain_model(network, temperature, epoch)
    return models


def architecture_step_times(network, batch, temperature, epoch, steps_per_round=5, rounds=3):
    """Step time of the final architecture H(s) and of the full network, as stock Keras models.

    Args:
        network: the run's network (a growing one, or a full one: then both are the same model
            and it is timed once).
        batch: (images, labels) of the run's global batch size.
        temperature, epoch: the run's `Temperature` and final epoch (H(s)'s mask values).
        steps_per_round, rounds: as `time_interleaved`.

    Returns:
        {"step_time_final_s", "step_time_full_s", "step_time_ratio"}.
    """
    models = architecture_models(network, temperature, epoch)
    steps = {name: stock_step(model) for name, model in models.items()}
    seconds = time_interleaved(steps, batch, rounds, steps_per_round)
    final = seconds.get("final", seconds["full"])
    return {
        "step_time_final_s": final,
        "step_time_full_s": seconds["full"],
        "step_time_ratio": final / seconds["full"],
    }
