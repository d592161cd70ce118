"""Dynamic loss scaling for `mixed_float16` in tfgrow's own training step.

float16 gradients below 6e-8 flush to zero. As Keras' `LossScaleOptimizer` (same defaults), the
step differentiates `loss * scale` (the tape's upstream gradient is `scale`), divides the
gradients by `scale`, and applies them only when all are finite; a non-finite step halves the
scale and changes no weight, and 1,000 finite steps in a row double it. `bfloat16` has
float32's exponent range and needs none of this.
"""

import tensorflow as tf

INITIAL_SCALE = 2.0**15
GROWTH_STEPS = 1000


class DynamicLossScale(tf.Module):
    """The loss scale and its count of finite steps (checkpointed with the trainer).

    Args:
        initial_scale: the first scale (Keras: 2 ** 15).
        growth_steps: finite steps after which the scale doubles (Keras: 1000).
    """

    def __init__(self, initial_scale=INITIAL_SCALE, growth_steps=GROWTH_STEPS):
        super().__init__(name="loss_scale")
        if not initial_scale > 0:
            raise ValueError(f"Expected initial_scale > 0. Received: {initial_scale}")
        self.growth_steps = int(growth_steps)
        self.scale = tf.Variable(float(initial_scale), trainable=False, name="scale")
        self.finite_steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="finite_steps")

    def unscale(self, gradients):
        """(the gradients divided by the scale, whether all of them are finite)."""
        inverse = 1.0 / tf.convert_to_tensor(self.scale)
        unscaled = [gradient * tf.cast(inverse, gradient.dtype) for gradient in gradients]
        finite = tf.reduce_all([tf.reduce_all(tf.math.is_finite(g)) for g in unscaled])
        return unscaled, finite

    def assignments(self, finite):
        """(variable, new value) pairs: the scale and count after a step (finite or not)."""
        scale = tf.convert_to_tensor(self.scale)
        count = tf.convert_to_tensor(self.finite_steps) + 1
        grow = tf.logical_and(finite, count >= self.growth_steps)
        new_scale = tf.where(finite, tf.where(grow, scale * 2.0, scale), scale / 2.0)
        new_count = tf.where(tf.logical_and(finite, tf.logical_not(grow)), count, 0)
        return [(self.scale, new_scale), (self.finite_steps, new_count)]


def keep_if_finite(finite, assignments, scatters):
    """The optimiser's writes, each keeping its variable's value when `finite` is False.

    Args:
        finite: bool scalar, whether the step's gradients were finite.
        assignments: (variable, new value) pairs.
        scatters: (variable, scatter_nd indices, new rows) triples.

    Returns:
        (assignments, scatters) of the same structure.
    """
    kept = [
        (variable, tf.where(finite, value, tf.convert_to_tensor(variable)))
        for variable, value in assignments
    ]
    kept_scatters = [
        (variable, indices, tf.where(finite, rows, tf.gather_nd(variable, indices)))
        for variable, indices, rows in scatters
    ]
    return kept, kept_scatters
