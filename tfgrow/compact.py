"""Compact operations the growing engine runs on active channels (DESIGN.md, "Compact execution").

- `gather`, `gather_rows`, `kernel_rows`, `KernelRows`: weights at the active channels, and
  kernel rows read sparsely for the compact training update;
- `batch_norm`: batch norm on the active channels, with mask values folded into gamma and beta,
  fused where it pays, moving statistics updated at the active channels only;
- `run_if_on`: a gated block's branch, computed only when its gate is on.

The graph engine's executors (`tfgrow/growing/executors.py`, `recurrent.py`) call these.
"""

from typing import NamedTuple

import keras
import tensorflow as tf


def gather(tensor, active, axis, context=None):
    """`tensor`'s entries at the active indices along `axis`.

    A complete set (`ActiveSet.complete`) reads `tensor` as it is: no copy forward, no
    segment-sum gradient. With ragged widths that is decided at run time, for kernels only: a
    `tf.cond` costs more than gathering a vector. With static shapes (XLA), vectors (BN
    parameters and statistics) are selected by a matmul with a one-hot matrix, whose gradient is
    another matmul rather than XLA's serial CPU scatter. Kernels keep `tf.gather`: for them the
    one-hot product costs as much as a convolution (measured with benchmarks/step_time.py:
    VGG-16 XLA steps 8-13% slower).
    """
    if active.known_complete:
        return tensor
    static = context is not None and context.static_shapes
    if len(tensor.shape) > 1 and isinstance(active.complete, tf.Tensor):
        value = tf.convert_to_tensor(tensor)
        return tf.cond(
            active.complete,
            lambda: tf.identity(value),
            lambda: _gather_kernel(value, active.indices, axis, static),
        )
    if len(tensor.shape) > 1:
        return _gather_kernel(tensor, active.indices, axis, static)
    if not static:
        return tf.gather(tensor, active.indices)
    selection = tf.one_hot(active.indices, tensor.shape[0], dtype=tensor.dtype)  # [k, n]
    return tf.linalg.matvec(selection, tensor)


def kernel_rows(variable, active, axis, context):
    """A kernel at the active input channels along `axis`: the rows the training step gathered
    before the pass (`ExecutionContext.kernel_rows`, `KernelRows`), or gathered here."""
    rows = context.kernel_rows.get(id(variable))
    if rows is not None:
        return rows
    return gather(variable, active, axis, context)


def _gather_kernel(kernel, indices, axis, static):
    """`tf.gather` of a kernel; on its last axis, outside XLA, as a gather of whole rows.

    TF gathers the last axis element by element: between two transposes it copies rows whole,
    1.5-2.5x faster forward and as fast backward (measured on [3, 3, 384, 512] and
    [1, 1, 1536, 2048] kernels keeping 3/4 of their outputs: 15 -> 6-7 ms and 25 -> 11-17 ms).
    """
    rank = len(kernel.shape)
    if static or axis != rank - 1:
        return tf.gather(kernel, indices, axis=axis)
    rows = tf.gather(tf.transpose(kernel, [axis, *range(axis)]), indices)
    return tf.transpose(rows, [*range(1, rank), 0])


def tf_variable(variable):
    """The tf.Variable (possibly distributed) behind a Keras variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def gather_rows(variable, indices, axis):
    """`variable`'s slices at `indices` along `axis`, read sparsely (one `ResourceGather`).

    The compact update scatters rows back in place (`ResourceScatterNdUpdate`), which switches
    a TF variable to copy-on-read: a dense read followed by `tf.gather` would then copy the whole
    kernel every step. The result is a gradient source of its own (watch it on the tape): the
    gradient stops there rather than running `ResourceGather`'s gradient, which ignores
    `batch_dims`.
    """
    leading = tf.shape(variable)[:axis]
    indices = tf.broadcast_to(indices, tf.concat([leading, tf.shape(indices)], 0))
    rows = tf.raw_ops.ResourceGather(
        resource=tf_variable(variable).handle,
        indices=indices,
        dtype=tf.as_dtype(variable.dtype),
        batch_dims=axis,
    )
    return tf.stop_gradient(rows)


class KernelRows(NamedTuple):
    """A kernel's rows at the active input channels, for a compact training update.

    The training step gathers these rows (`gather_rows`) inside its gradient tape before the
    forward pass; the layer convolves with them (`ExecutionContext.kernel_rows`), and the
    optimiser differentiates, updates and scatters back just these rows instead of passes over
    the full-size kernel, its gradient and its momentum (`MaskedMomentum.row_step`).

    Attributes:
        variable: the kernel variable.
        axis: its input-channel axis (2 for conv [kh, kw, in, out], 0 for dense [in, out]).
        indices: [k] active input channels (int32).
        rows: the kernel at `indices` along `axis`.
        mask: 0/1, broadcastable to `rows`: the entries this pass computes (input mask at
            `indices` x output mask x block gate); padding slots and dropped outputs are 0.
    """

    variable: object
    axis: int
    indices: tf.Tensor
    rows: tf.Tensor
    mask: tf.Tensor


class BatchNormWeights(NamedTuple):
    """The variables of one batch norm; `gamma` or `beta` is None when it has none."""

    gamma: object
    beta: object
    moving_mean: object
    moving_variance: object


def batch_norm(y, weights, active, context, momentum, epsilon, scale=None, fusable=False):
    """Batch norm of `y` (last axis = `active`'s channels), times `scale` per channel.

    `m * BN(y) = normalised(y) * (m gamma) + m beta`: mask values ride on the BN parameters,
    which saves a pass over the activations forward and backward. In training mode the batch
    moments normalise and the moving-statistic updates go to `context.state_updates`.

    Args:
        y: activations whose last axis holds the channels of `active`.
        weights: `BatchNormWeights` at full width.
        active: the `ActiveSet` of `y`'s channels.
        context: the `ExecutionContext`.
        momentum, epsilon: as Keras' BatchNormalization.
        scale: per-channel mask values to fold in, or None.
        fusable: in the ragged mode (width unknown at trace time), whether the width is a
            multiple of 4 (`fuses_batch_norm`).

    Returns:
        The normalised (and scaled) activations.
    """
    # Statistics, gamma, beta and mask values stay float32 under a mixed policy (a variance
    # of bfloat16 sums loses all but 8 bits): float32 in, the activations' dtype out, as in
    # Keras' BatchNormalization. `float32` casts to float32 are no-ops.
    width = tf.shape(y)[-1]
    gamma = _float32(_vector_or(weights.gamma, active, context, tf.ones([width])))
    beta = _float32(_vector_or(weights.beta, active, context, tf.zeros([width])))
    if scale is not None:
        scale = _float32(scale)
        gamma, beta = gamma * scale, beta * scale
    if not context.training:
        mean = gather(weights.moving_mean, active, 0, context)
        variance = gather(weights.moving_variance, active, 0, context)
        normalized = tf.nn.batch_normalization(_float32(y), mean, variance, beta, gamma, epsilon)
        return tf.cast(normalized, y.dtype)
    count = tf.cast(tf.size(y) // tf.maximum(tf.shape(y)[-1], 1), tf.float32)
    if fuses_batch_norm(y, context, fusable):
        # The op's moments are float32 for bfloat16/float16 activations too. It runs on them
        # directly when the width is static; at a width unknown at trace time (ragged mode) its
        # bfloat16 kernel made a ResNet-20 step 1.6-1.8x slower than float32 (ragged bfloat16
        # step 0.55-0.62x float32's at half width, benchmarks/mixed_precision.py), so it then
        # runs in float32 between two casts (1.11x faster than float32).
        x = y if y.shape[-1] is not None else _float32(y)
        normalized, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=epsilon, is_training=True
        )
        normalized = tf.cast(normalized, y.dtype)
        # The op returns the Bessel-corrected variance; the moving average takes the biased
        # one, like the unfused path below and Keras.
        variance = variance * tf.math.divide_no_nan(count - 1.0, count)
    else:  # dense layers, widths not a multiple of 4, and sync BN (moments all-reduced)
        y32 = _float32(y)
        axes = list(range(len(y.shape) - 1))
        mean = tf.math.divide_no_nan(tf.reduce_sum(y32, axes), count)
        mean_square = tf.math.divide_no_nan(tf.reduce_sum(tf.square(y32), axes), count)
        mean, mean_square = context.replica_mean([mean, mean_square])
        variance = tf.maximum(mean_square - tf.square(mean), 0.0)
        normalized = tf.nn.batch_normalization(y32, mean, variance, beta, gamma, epsilon)
        normalized = tf.cast(normalized, y.dtype)
    for variable, batch_value in (
        (weights.moving_mean, mean),
        (weights.moving_variance, variance),
    ):
        context.state_updates.append(
            (variable, moving_update(variable, batch_value, active, context, momentum))
        )
    return normalized


def _float32(tensor):
    return tf.cast(tensor, tf.float32)


def _vector_or(variable, active, context, default):
    return default if variable is None else gather(variable, active, 0, context)


def fuses_batch_norm(y, context, fusable):
    """Whether training-mode BN runs as one FusedBatchNormV3 op forward and one backward.

    On CPU the unfused moments and normalisation cost about as much as the convolutions,
    and the fused op halves that, but only when the channel count is a multiple of 4:
    otherwise oneDNN's fused gradient is 2-5x slower than the unfused ops (measured on
    [128, 28, 28, C]: C = 8, 12, 16 fused 2.4-3.7 ms, unfused 4.2-6.4 ms; C = 9, 10 fused
    23-32 ms, unfused 5.7-6.2 ms). Sync BN all-reduces its moments, so it stays unfused.

    Args:
        y: the activations.
        context: the `ExecutionContext`.
        fusable: used when the width is unknown at trace time (ragged mode): whether every
            computed width is a multiple of 4 (the caller knows the channel multiple).
    """
    if y.shape.rank != 4 or context.syncs_across_replicas():
        return False
    width = y.shape[-1]
    if width is None:
        return bool(fusable)
    return width % 4 == 0


def moving_update(variable, batch_value, active, context, momentum):
    """The new value of a moving statistic, updated at the active (sampled) channels only."""
    current = tf.convert_to_tensor(variable)
    old = gather(current, active, 0, context)
    updated = momentum * old + (1.0 - momentum) * batch_value
    if active.is_full:
        return updated
    if active.known_complete:  # every slot in place: unsampled channels keep their statistics
        return tf.where(active.mask > 0, updated, old)
    # Padding slots (computed, but not sampled) keep their statistics.
    updated = tf.where(tf.gather(active.mask, active.indices) > 0, updated, old)
    if context.static_shapes:  # indices are distinct: scatter as a one-hot matmul (XLA)
        selection = tf.one_hot(active.indices, current.shape[0], dtype=current.dtype)
        return current + tf.linalg.matvec(selection, updated - old, transpose_a=True)
    return tf.tensor_scatter_nd_update(current, active.indices[:, None], updated)


def run_if_on(body, inputs, on, context):
    """`body(inputs, context)` when the gate `on` is true; zeros, at the cost of one example,
    when it is off. `body` must return a tensor shaped like `inputs` (a gated block keeps its
    shape).

    An off block must cost (almost) nothing. `tf.cond` would skip it entirely, but the
    gradient graphs of 48 conds made a Basic3ResNet trace for over a minute; instead the body
    runs on the whole batch or on its first example only (an empty batch would be free, but
    TF's Conv2D returns its input unchanged on empty batches). The stand-in row is zeroed, so
    no gradient reaches the block, and its BN moving statistics are only updated when on.
    """
    batch = tf.shape(inputs)[0]
    if context.static_shapes:
        if not context.syncs_across_replicas():
            return _run_cond(body, inputs, on, context)
        # Replicas all-reduce BN statistics, which cannot happen inside a tf.cond: with
        # static shapes the off block is computed on the whole batch and zeroed.
        rows = batch
    else:
        rows = tf.where(on, batch, tf.minimum(batch, 1))
    outer_updates = context.state_updates
    context.state_updates = []
    try:
        result = body(inputs[:rows], context)
        block_updates = context.state_updates
    finally:
        context.state_updates = outer_updates
    for variable, value in block_updates:
        context.state_updates.append(
            (variable, tf.where(on, value, tf.convert_to_tensor(variable)))
        )
    padding = [[0, batch - rows]] + [[0, 0]] * (len(result.shape) - 1)
    return tf.pad(result * tf.cast(on, result.dtype), padding)


def _run_cond(body, inputs, on, context):
    """`body` or zeros through `tf.cond`: static shapes for XLA, the off branch runs nothing."""
    outer_updates = context.state_updates
    variables = []

    def run_body():
        context.state_updates = []
        result = body(inputs, context)
        variables.extend(variable for variable, _ in context.state_updates)
        return [result] + [value for _, value in context.state_updates]

    def skip():
        # Traced after run_body (cond_v2 traces the true branch first): same structure.
        return [tf.zeros_like(inputs)] + [tf.convert_to_tensor(variable) for variable in variables]

    try:
        outputs = tf.cond(on, run_body, skip)
    finally:
        context.state_updates = outer_updates
    context.state_updates.extend(zip(variables, outputs[1:]))
    return outputs[0]
