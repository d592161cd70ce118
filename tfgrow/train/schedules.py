"""Learning-rate schedules of a run: cosine, step, constant, or epoch decay over the run's steps.

One home for the growing trainer (`tfgrow.train.growing_run`), MorphNet (`tfgrow.morphnet.run`)
and the stock-Keras baselines (`tfgrow.train.plain`, `tfgrow.baselines.magnitude_pruning`).
"""

import gin
import keras
import tensorflow as tf

SCHEDULES = ("cosine", "step", "constant", "epoch_decay")


@gin.configurable(module="tfgrow", denylist=["steps_per_epoch"])
def learning_rate_schedule(
    total_steps,
    base=0.1,
    kind="cosine",
    boundaries=(0.5, 0.75),
    decay=0.1,
    constant_epochs=0,
    steps_per_epoch=None,
):
    """A Keras learning-rate schedule over `total_steps`.

    Args:
        total_steps: steps of the whole run.
        base: initial learning rate.
        kind: "cosine" (to 0 at the end), "step" (times `decay` at each fraction in
            `boundaries` of the run), "constant", or "epoch_decay": `base` for the first
            `constant_epochs` epochs, then times `decay` after every further epoch (Zaremba et
            al.'s LSTMs: 14 epochs, then / 1.15 per epoch, i.e. decay = 1 / 1.15).
        boundaries: fractions of the run where the step schedule decays.
        decay: the step and epoch-decay schedules' factor.
        constant_epochs: epochs at `base` before the epoch decay starts.
        steps_per_epoch: the run's steps per epoch (its runner passes them); needed by
            "epoch_decay".

    Returns:
        A callable `step -> learning rate` (a Keras schedule, or a constant).
    """
    if kind not in SCHEDULES:
        raise ValueError(f"Expected schedule kind in {SCHEDULES}. Received: kind={kind!r}")
    if kind == "epoch_decay":
        if not steps_per_epoch:
            raise ValueError(
                "Expected steps_per_epoch for the 'epoch_decay' schedule. Received none: this "
                "runner supports it only for methods 'grow', 'full' and 'random'. Fix: use "
                "tfgrow.train.schedule = 'step' with one boundary per epoch instead."
            )
        return _epoch_decay(base, decay, constant_epochs, steps_per_epoch)
    if kind == "cosine":
        return keras.optimizers.schedules.CosineDecay(base, max(1, total_steps))
    if kind == "step":
        steps = [int(b * total_steps) for b in boundaries]
        values = [base * decay**i for i in range(len(steps) + 1)]
        return keras.optimizers.schedules.PiecewiseConstantDecay(steps, values)
    return lambda step: tf.constant(base, tf.float32)


def _epoch_decay(base, decay, constant_epochs, steps_per_epoch):
    """`step -> base * decay ** max(0, epoch + 1 - constant_epochs)` with `epoch` counted
    from 0: epoch `constant_epochs` (the first after the constant ones) runs at `base * decay`."""

    def rate(step):
        epoch = tf.cast(tf.convert_to_tensor(step) // steps_per_epoch, tf.float32)
        exponent = tf.maximum(epoch + 1.0 - float(constant_epochs), 0.0)
        return tf.cast(base, tf.float32) * tf.pow(tf.cast(decay, tf.float32), exponent)

    return rate


def optimizer_learning_rate(total_steps, base, kind):
    """What a Keras optimizer takes as its learning rate: `base` itself for a constant schedule
    (a float, no schedule to trace), else `learning_rate_schedule(total_steps, base, kind)`."""
    return base if kind == "constant" else learning_rate_schedule(total_steps, base, kind)
