"""SGD with momentum and decoupled-from-detached-structures weight decay.

METHOD.md §1.2: a structure that was not computed in a step gets no gradient, no weight decay and
no momentum step, so it keeps its weights until it is sampled again ("grown back in place").
Keras' SGD would keep moving it with its momentum buffer, so tfgrow updates only the entries the
step computed: `v <- mu v + g + wd w; w <- w - lr v` where the step's mask is 1, nothing elsewhere.

Kernels whose input runs below full width are updated row-compactly (`row_step`): the step
differentiates the gathered rows, updates them and their momentum, and scatters them back in
place, so its cost follows the sub-network rather than the maximal network.

Plain SGD (no momentum, no weight decay, the language models' recipe) leaves an entry with a zero
gradient as it is, so a sparse gradient (an embedding's looked-up rows, `tf.IndexedSlices`)
updates only its rows (`sparse_step`): a step of a 10,000-word embedding touches the batch's few
hundred rows, not the whole matrix.
"""

import tensorflow as tf

from tfgrow.compact import gather_rows


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

    def step(self, gradients, learning_rate, masks=None):
        """New values of (variable, velocity) pairs, as (variable, value) assignments.

        Pure: reads the variables and returns what they become, so the caller can assign in
        whatever context its strategy needs (every replica computes identical values).

        Args:
            gradients: one gradient per variable (already summed over replicas); None skips
                the variable (e.g. a kernel that `row_step` updates).
            learning_rate: scalar.
            masks: one 0/1 mask (broadcastable) or None per variable: where the step computed.
        """
        masks = masks if masks is not None else [None] * len(gradients)
        assignments = []
        for variable, velocity, gradient, mask in zip(
            self.variables_to_update, self.velocities, gradients, masks
        ):
            if gradient is None:
                continue
            arguments = (
                tf.convert_to_tensor(variable),
                tf.convert_to_tensor(velocity),
                tf.convert_to_tensor(gradient),
                tf.cast(learning_rate, variable.dtype),
            )
            if mask is None:
                new_weights, new_velocity = self._update(*arguments)
            else:
                mask = tf.broadcast_to(tf.cast(mask, variable.dtype), variable.shape)
                new_weights, new_velocity = self._masked_update(*arguments, mask)
            assignments += [(velocity, new_velocity), (variable, new_weights)]
        return assignments

    @property
    def plain_sgd(self):
        """No momentum and no weight decay: `sparse_step` applies."""
        return self.momentum == 0.0 and self.weight_decay == 0.0

    def sparse_step(self, variable, gradient, learning_rate):
        """Plain SGD on the rows of a sparse gradient, as scatters `(variable, indices, rows)`.

        Pure like `step`. Only for `plain_sgd`: with momentum or weight decay every entry moves.

        Args:
            variable: one of this optimiser's variables.
            gradient: a `tf.IndexedSlices` over its first axis, each index once
                (`summed_slices`).
            learning_rate: scalar.
        """
        if not self.plain_sgd:
            raise ValueError(
                f"Expected plain SGD for a sparse update. Received: momentum={self.momentum}, "
                f"weight_decay={self.weight_decay}; pass the gradient dense."
            )
        rows = tf.gather(variable, gradient.indices)
        step = tf.cast(learning_rate, rows.dtype) * tf.cast(gradient.values, rows.dtype)
        return [(variable, gradient.indices[:, None], rows - step)]

    def row_step(self, rows, gradient, learning_rate):
        """The update of one `KernelRows`, as scatters `(variable, indices, new rows)`.

        Pure like `step`: `rows.rows` is the variable's current value at those rows (read in
        the same step), and entries where `rows.mask` is 0 keep their weights and momentum.
        The caller writes the rows in place with `tf.Variable.scatter_nd_update`.

        Args:
            rows: a `KernelRows` of one of this optimiser's variables.
            gradient: the gradient with respect to `rows.rows` (summed over replicas).
            learning_rate: scalar.
        """
        velocity = self._velocity_of(rows.variable)
        velocity_rows = gather_rows(velocity, rows.indices, rows.axis)
        new_weights, new_velocity = self._update(
            rows.rows, velocity_rows, gradient, tf.cast(learning_rate, rows.rows.dtype)
        )
        new_velocity, new_weights = _keep_uncomputed(
            rows, (new_velocity, new_weights), (velocity_rows, rows.rows)
        )
        indices = row_indices(rows.variable.shape, rows.axis, rows.indices)
        return [(velocity, indices, new_velocity), (rows.variable, indices, new_weights)]

    def _velocity_of(self, variable):
        """The velocity slot of `variable` (a list scan: a dict keyed by id would be tracked)."""
        for candidate, velocity in zip(self.variables_to_update, self.velocities):
            if candidate is variable:
                return velocity
        raise KeyError(f"{variable.path} is not updated by optimizer {self.name!r}")

    def _update(self, weights, velocity, gradient, learning_rate):
        if self.weight_decay:
            gradient = gradient + self.weight_decay * weights
        new_velocity = self.momentum * velocity + gradient
        update = gradient + self.momentum * new_velocity if self.nesterov else new_velocity
        return weights - learning_rate * update, new_velocity

    @tf.function(jit_compile=True, autograph=False)
    def _masked_update(self, weights, velocity, gradient, learning_rate, mask):
        """The update where `mask` is 1; elsewhere weights and velocity stay.

        Compiled with XLA (also in the ragged mode: every operand has the variable's static
        shape), which fuses decay, momentum and selection into one pass over the variable.
        """
        new_weights, new_velocity = self._update(weights, velocity, gradient, learning_rate)
        keep = mask > 0
        return tf.where(keep, new_weights, weights), tf.where(keep, new_velocity, velocity)


def summed_slices(gradient):
    """A `tf.IndexedSlices` gradient with every index once (the values of repeats summed), so
    its norm and its scatter are those of the dense gradient."""
    indices, positions = tf.unique(gradient.indices)
    values = tf.math.unsorted_segment_sum(gradient.values, positions, tf.size(indices))
    return tf.IndexedSlices(values, indices, gradient.dense_shape)


def _keep_uncomputed(rows, new, old):
    """`new` where `rows.mask` is 1, `old` elsewhere (tensors shaped like `rows.rows`).

    With ragged widths (shape unknown at trace time) a `tf.cond` skips the selection when every
    entry was computed (a full-width group with every channel sampled): two passes over the
    rows saved. Under XLA the selection fuses into the update, so it stays unconditional.
    """

    def select():
        keep = rows.mask > 0  # [k, columns]: broadcast by the selection, not materialised
        return tuple(tf.where(keep, n, o) for n, o in zip(new, old))

    if rows.rows.shape.is_fully_defined():
        return select()
    return tf.cond(tf.reduce_all(rows.mask > 0), lambda: tuple(tf.identity(n) for n in new), select)


def row_indices(shape, axis, indices):
    """`scatter_nd` indices of the rows `indices` along `axis` of a tensor of `shape`.

    [*shape[:axis], k, axis + 1]: every leading position with every row, so each index
    addresses one contiguous slice `shape[axis + 1:]`.
    """
    ranges = [tf.range(int(n), dtype=indices.dtype) for n in shape[:axis]]
    return tf.stack(tf.meshgrid(*ranges, indices, indexing="ij"), axis=-1)
