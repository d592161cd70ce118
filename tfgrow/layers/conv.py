"""Growable convolution and dense layers with batch norm, executed on active channels only.

Each layer holds the full-size weights of the maximal network. In a pass it gathers
`kernel[..., in_indices, out_indices]` and the BN parameters at `out_indices`, computes only those
channels, and multiplies the result by the mask values `m` after batch norm (METHOD.md §1.1:
masking the kernel alone would leave the BN shift alive). Gradients therefore reach only the
gathered slices.
"""

from typing import NamedTuple

import keras
import tensorflow as tf

from tfgrow.cost import LayerCost
from tfgrow.layers.conv_ops import conv2d_same

ACTIVATIONS = {"relu": tf.nn.relu, "linear": None, None: None}


def _gather(tensor, active, axis, context=None):
    """`tensor`'s entries at the active indices along `axis`.

    With static shapes (XLA), vectors (BN parameters and statistics) are selected by a matmul
    with a one-hot matrix, whose gradient is another matmul rather than XLA's serial CPU scatter.
    Kernels keep `tf.gather`: for them the one-hot product costs as much as a convolution
    (measured with benchmarks/step_time.py: VGG-16 XLA steps 8-13% slower).
    """
    if active.is_full:
        return tensor
    if context is None or not context.static_shapes or len(tensor.shape) > 1:
        return tf.gather(tensor, active.indices, axis=axis)
    selection = tf.one_hot(active.indices, tensor.shape[0], dtype=tensor.dtype)  # [k, n]
    return tf.linalg.matvec(selection, tensor)


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


def _float_mask(active, width):
    return tf.ones([width]) if active.is_full else active.mask


class _GrowableBase(keras.layers.Layer):
    """Shared weights and compact BN of growable conv and dense layers."""

    kind = None

    def __init__(
        self,
        units,
        input_group=None,
        output_group=None,
        use_batch_norm=True,
        use_bias=False,
        activation="relu",
        block=None,
        batch_norm_momentum=0.9,
        batch_norm_epsilon=1e-5,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"Expected activation in {sorted(map(str, ACTIVATIONS))}. "
                f"Received: activation={activation!r}"
            )
        self.units = int(units)
        self.input_group = input_group
        self.output_group = output_group
        self.use_batch_norm = use_batch_norm
        self.use_bias = use_bias
        self.activation = activation
        self.block = block
        self.batch_norm_momentum = batch_norm_momentum
        self.batch_norm_epsilon = batch_norm_epsilon

    def _build_common(self, kernel_shape):
        self.input_width = int(kernel_shape[-2])
        self.kernel = self.add_weight(
            shape=kernel_shape, initializer="he_normal", name="kernel", trainable=True
        )
        self.bias = (
            self.add_weight(shape=(self.units,), initializer="zeros", name="bias")
            if self.use_bias
            else None
        )
        if self.use_batch_norm:
            self.gamma = self.add_weight(shape=(self.units,), initializer="ones", name="gamma")
            self.beta = self.add_weight(shape=(self.units,), initializer="zeros", name="beta")
            self.moving_mean = self.add_weight(
                shape=(self.units,), initializer="zeros", name="moving_mean", trainable=False
            )
            self.moving_variance = self.add_weight(
                shape=(self.units,), initializer="ones", name="moving_variance", trainable=False
            )

    def _finish(self, y, context):
        """Bias, compact batch norm, mask values and activation on the active outputs."""
        out = context.active(self.output_group)
        if self.bias is not None:
            y = y + _gather(self.bias, out, 0, context)
        if self.use_batch_norm:
            # m * BN(y) = normalised(y) * (m gamma) + m beta: the mask values ride on the BN
            # parameters, which saves a pass over the activations forward and backward.
            y = self._batch_norm(y, out, context, scale=out.values)
        elif out.values is not None:
            y = y * out.values
        function = ACTIVATIONS[self.activation]
        return function(y) if function is not None else y

    def _batch_norm(self, y, out, context, scale=None):
        gamma, beta = _gather(self.gamma, out, 0, context), _gather(self.beta, out, 0, context)
        if scale is not None:
            gamma, beta = gamma * scale, beta * scale
        epsilon = self.batch_norm_epsilon
        if not context.training:
            mean = _gather(self.moving_mean, out, 0, context)
            variance = _gather(self.moving_variance, out, 0, context)
            return tf.nn.batch_normalization(y, mean, variance, beta, gamma, epsilon)
        count = tf.cast(tf.size(y) // tf.maximum(tf.shape(y)[-1], 1), y.dtype)
        if self._fuses_batch_norm(y, context):
            normalized, mean, variance = tf.compat.v1.nn.fused_batch_norm(
                y, gamma, beta, epsilon=epsilon, is_training=True
            )
            # The op returns the Bessel-corrected variance; the moving average takes the biased
            # one, like the unfused path below and Keras.
            variance = variance * tf.math.divide_no_nan(count - 1.0, count)
        else:  # dense layers, widths not a multiple of 4, and sync BN (moments all-reduced)
            axes = list(range(len(y.shape) - 1))
            mean = tf.math.divide_no_nan(tf.reduce_sum(y, axes), count)
            mean_square = tf.math.divide_no_nan(tf.reduce_sum(tf.square(y), axes), count)
            mean, mean_square = context.replica_mean([mean, mean_square])
            variance = tf.maximum(mean_square - tf.square(mean), 0.0)
            normalized = tf.nn.batch_normalization(y, mean, variance, beta, gamma, epsilon)
        for variable, batch_value in ((self.moving_mean, mean), (self.moving_variance, variance)):
            context.state_updates.append(
                (variable, self._moving_update(variable, batch_value, out, context))
            )
        return normalized

    def _fuses_batch_norm(self, y, context):
        """Whether training-mode BN runs as one FusedBatchNormV3 op forward and one backward.

        On CPU the unfused moments and normalisation cost about as much as the convolutions,
        and the fused op halves that, but only when the channel count is a multiple of 4:
        otherwise oneDNN's fused gradient is 2-5x slower than the unfused ops (measured on
        [128, 28, 28, C]: C = 8, 12, 16 fused 2.4-3.7 ms, unfused 4.2-6.4 ms; C = 9, 10 fused
        23-32 ms, unfused 5.7-6.2 ms). Sync BN all-reduces its moments, so it stays unfused.
        """
        if y.shape.rank != 4 or context.syncs_across_replicas():
            return False
        width = y.shape[-1]
        if width is None:  # ragged: a multiple of context.channel_multiple, or the full size
            return context.channel_multiple % 4 == 0 and self.units % 4 == 0
        return width % 4 == 0

    def _moving_update(self, variable, batch_value, out, context):
        momentum = self.batch_norm_momentum
        current = tf.convert_to_tensor(variable)
        old = _gather(current, out, 0, context)
        updated = momentum * old + (1.0 - momentum) * batch_value
        if out.is_full:
            return updated
        # Padding slots (computed, but not sampled) keep their statistics.
        updated = tf.where(tf.gather(out.mask, out.indices) > 0, updated, old)
        if context.static_shapes:  # indices are distinct: scatter as a one-hot matmul (XLA)
            selection = tf.one_hot(out.indices, current.shape[0], dtype=current.dtype)
            return current + tf.linalg.matvec(selection, updated - old, transpose_a=True)
        return tf.tensor_scatter_nd_update(current, out.indices[:, None], updated)

    @property
    def kernel_input_axis(self):
        return len(self.kernel.shape) - 2

    def gather_kernel_rows(self, context, on=1.0):
        """`KernelRows` at the active input channels (None when the input runs at full width).

        Records the rows in `context.kernel_rows`, so the pass convolves with this very tensor;
        `on` is the enclosing block's 0/1 gate.
        """
        inputs = context.active(self.input_group)
        if inputs.is_full:
            return None
        axis = self.kernel_input_axis
        rows = gather_rows(self.kernel, inputs.indices, axis)
        context.kernel_rows[id(self.kernel)] = rows
        out_mask = _float_mask(context.active(self.output_group), self.units)
        mask = tf.gather(inputs.mask, inputs.indices)[:, None] * out_mask[None, :] * on
        return KernelRows(self.kernel, axis, inputs.indices, rows, mask)

    def _input_rows(self, context):
        """The kernel at the active input channels: pre-gathered rows, or gathered here."""
        rows = context.kernel_rows.get(id(self.kernel))
        if rows is not None:
            return rows
        return _gather(
            self.kernel, context.active(self.input_group), self.kernel_input_axis, context
        )

    def weight_masks(self, context):
        """Variable -> float 0/1 mask of the entries this pass computes (None: all of them)."""
        out = context.active(self.output_group)
        inputs = context.active(self.input_group)
        if out.is_full and inputs.is_full:
            return {}
        out_mask = _float_mask(out, self.units)
        in_mask = _float_mask(inputs, self.input_width)
        kernel_mask = self._kernel_mask(in_mask, out_mask)
        masks = {id(self.kernel): kernel_mask}
        for variable in (self.bias, getattr(self, "gamma", None), getattr(self, "beta", None)):
            if variable is not None:
                masks[id(variable)] = out_mask
        return masks

    def _kernel_mask(self, in_mask, out_mask):
        return in_mask[:, None] * out_mask[None, :]

    def get_config(self):
        config = super().get_config()
        config.update(
            input_group=self.input_group,
            output_group=self.output_group,
            use_batch_norm=self.use_batch_norm,
            use_bias=self.use_bias,
            activation=self.activation,
            block=self.block,
            batch_norm_momentum=self.batch_norm_momentum,
            batch_norm_epsilon=self.batch_norm_epsilon,
        )
        return config


@keras.saving.register_keras_serializable(package="tfgrow")
class GrowableConv2D(_GrowableBase):
    """A 2D convolution (+ BN + mask + activation) whose filters can be grown and pruned.

    Args:
        filters: the maximal number of output channels.
        kernel_size: int or (kh, kw).
        strides: int stride.
        input_group: channel group of the input tensor (None: fixed, e.g. image channels).
        output_group: channel group of the output (None: fixed width).
        use_batch_norm, use_bias, activation: as in Keras; activation "relu" or "linear".
        block: name of the enclosing block's layer mask (for costs and update masks).

    Call arguments:
        inputs: NHWC tensor whose last axis is the input group's active set.
        context: an `ExecutionContext`.

    Returns:
        NHWC tensor whose last axis is the output group's active set.
    """

    kind = "conv"

    def __init__(self, filters, kernel_size=3, strides=1, **kwargs):
        super().__init__(filters, **kwargs)
        if isinstance(kernel_size, int):
            kernel_size = (kernel_size, kernel_size)
        self.filters = self.units
        self.kernel_size = tuple(int(k) for k in kernel_size)
        self.strides = int(strides)

    def build(self, input_shape):
        self._build_common((*self.kernel_size, int(input_shape[-1]), self.filters))
        self.built = True

    def call(self, inputs, context):
        kernel = _gather(self._input_rows(context), context.active(self.output_group), 3, context)
        y = conv2d_same(inputs, kernel, self.strides)  # strided 1x1: oneDNN#6035
        return self._finish(y, context)

    def _kernel_mask(self, in_mask, out_mask):
        return (in_mask[:, None] * out_mask[None, :])[None, None]

    def output_spatial(self, height, width):
        return -(-height // self.strides), -(-width // self.strides)

    def layer_costs(self, height, width):
        return [self.layer_cost(*self.output_spatial(height, width))]

    def layer_cost(self, output_height, output_width):
        return LayerCost(
            name=self.name,
            kind=self.kind,
            kernel_size=self.kernel_size,
            output_pixels=output_height * output_width,
            input_group=self.input_group,
            output_group=self.output_group,
            input_width=self.input_width,
            output_width=self.filters,
            use_bias=self.use_bias,
            use_batch_norm=self.use_batch_norm,
            block=self.block,
        )

    def get_config(self):
        config = super().get_config()
        config.update(filters=self.filters, kernel_size=self.kernel_size, strides=self.strides)
        return config


@keras.saving.register_keras_serializable(package="tfgrow")
class GrowableDense(_GrowableBase):
    """A dense layer (+ optional BN + mask + activation) whose units can be grown and pruned.

    Args:
        units: the maximal number of output units.
        Other arguments as `GrowableConv2D`.

    Call arguments:
        inputs: [batch, active input units].
        context: an `ExecutionContext`.
    """

    kind = "dense"

    def build(self, input_shape):
        self._build_common((int(input_shape[-1]), self.units))
        self.built = True

    def call(self, inputs, context):
        kernel = _gather(self._input_rows(context), context.active(self.output_group), 1, context)
        return self._finish(tf.matmul(inputs, kernel), context)

    def output_spatial(self, height, width):
        return 1, 1

    def layer_costs(self, height=1, width=1):
        return [self.layer_cost()]

    def layer_cost(self, output_height=1, output_width=1):
        return LayerCost(
            name=self.name,
            kind=self.kind,
            kernel_size=(1, 1),
            output_pixels=1,
            input_group=self.input_group,
            output_group=self.output_group,
            input_width=self.input_width,
            output_width=self.units,
            use_bias=self.use_bias,
            use_batch_norm=self.use_batch_norm,
            block=self.block,
        )

    def get_config(self):
        config = super().get_config()
        config.update(units=self.units)
        return config
