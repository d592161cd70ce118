"""SGD with momentum and decoupled-from-detached-structures weight decay.

METHOD.md §1.2: a structure that was not computed in a step gets no gradient, no weight decay and
no momentum step, so it keeps its weights until it is sampled again ("grown back in place").
Keras' SGD would keep moving it with its momentum buffer, so tfgrow updates only the entries the
step computed: `v <- mu v + g + wd w; w <- w - lr v` where the step's mask is 1, nothing elsewhere.
"""

import tensorflow as tf


class MaskedMomentum(tf.Module):
    """Momentum SGD whose update touches only the entries a step computed.

    Args:
        variables: the variables it updates (velocity slots are created here, so build it under
            the strategy's scope).
        momentum: momentum coefficient mu.
        weight_decay: L2 coefficient wd added to the gradient.
        nesterov: Nesterov momentum.
    """

    def __init__(self, variables, momentum=0.9, weight_decay=0.0, nesterov=False, name=None):
        super().__init__(name=name)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"Expected momentum in [0, 1). Received: momentum={momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"Expected weight_decay >= 0. Received: weight_decay={weight_decay}")
        self.momentum = float(momentum)
        self.weight_decay = float(weight_decay)
        self.nesterov = nesterov
        self.variables_to_update = list(variables)
        self.velocities = [
            tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name="velocity")
            for v in self.variables_to_update
        ]

    def update(self, variable, velocity, gradient, learning_rate, mask=None):
        """Applies one step to one variable (called per device by the training step)."""
        gradient = tf.convert_to_tensor(gradient)
        weights = tf.convert_to_tensor(variable)
        if self.weight_decay:
            gradient = gradient + self.weight_decay * weights
        new_velocity = self.momentum * velocity + gradient
        step = gradient + self.momentum * new_velocity if self.nesterov else new_velocity
        new_weights = weights - learning_rate * step
        if mask is not None:
            keep = tf.cast(mask, tf.bool)
            new_velocity = tf.where(keep, new_velocity, velocity)
            new_weights = tf.where(keep, new_weights, weights)
        velocity.assign(new_velocity)
        variable.assign(new_weights)
