"""Learning-rate schedules of a run: cosine, step or constant over the run's steps.

One home for the growing trainer (`tfgrow.train.growing_run`), MorphNet (`tfgrow.morphnet.run`)
and the stock-Keras baselines (`tfgrow.train.plain`, `tfgrow.baselines.magnitude_pruning`).
"""

import gin
import keras
import tensorflow as tf

SCHEDULES = ("cosine", "step", "constant")


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

    Returns:
        A callable `step -> learning rate` (a Keras schedule, or a constant).
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


def optimizer_learning_rate(total_steps, base, kind):
    """What a Keras optimizer takes as its learning rate: `base` itself for a constant schedule
    (a float, no schedule to trace), else `learning_rate_schedule(total_steps, base, kind)`."""
    return base if kind == "constant" else learning_rate_schedule(total_steps, base, kind)
