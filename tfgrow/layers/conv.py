"""Growable convolution and dense layers with batch norm, executed on active channels only.

Each layer holds the full-size weights of the maximal network. In a pass it gathers
`kernel[..., in_indices, out_indices]` and the BN parameters at `out_indices`, computes only those
channels, and multiplies the result by the mask values `m` after batch norm (METHOD.md §1.1:
masking the kernel alone would leave the BN shift alive). Gradients therefore reach only the
gathered slices. Under a mixed dtype policy weights stay float32 and are cast to the activations'
dtype where they meet them; batch norm keeps float32 statistics (`tfgrow.precision`).
"""

import keras
import tensorflow as tf

from tfgrow.compact import BatchNormWeights, KernelRows, batch_norm, gather, gather_rows
from tfgrow.cost import LayerCost
from tfgrow.layers.conv_ops import conv2d_same
from tfgrow.precision import cast_like

ACTIVATIONS = {"relu": tf.nn.relu, "linear": None, None: None}


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
            # Float32 batch norm under a mixed policy, as Keras' BatchNormalization's: its
            # weights are never autocast (Keras fit reads variables inside the model's call).
            self.gamma = self.add_weight(
                shape=(self.units,), initializer="ones", name="gamma", autocast=False
            )
            self.beta = self.add_weight(
                shape=(self.units,), initializer="zeros", name="beta", autocast=False
            )
            self.moving_mean = self.add_weight(
                shape=(self.units,),
                initializer="zeros",
                name="moving_mean",
                trainable=False,
                autocast=False,
            )
            self.moving_variance = self.add_weight(
                shape=(self.units,),
                initializer="ones",
                name="moving_variance",
                trainable=False,
                autocast=False,
            )

    def _finish(self, y, context):
        """Bias, compact batch norm, mask values and activation on the active outputs."""
        out = context.active(self.output_group)
        if self.bias is not None:
            y = y + cast_like(gather(self.bias, out, 0, context), y)
        if self.use_batch_norm:
            # m * BN(y) = normalised(y) * (m gamma) + m beta: the mask values ride on the BN
            # parameters, which saves a pass over the activations forward and backward.
            y = self._batch_norm(y, out, context, scale=out.values)
        elif out.values is not None:
            y = y * cast_like(out.values, y)
        function = ACTIVATIONS[self.activation]
        return function(y) if function is not None else y

    def _batch_norm(self, y, out, context, scale=None):
        weights = BatchNormWeights(self.gamma, self.beta, self.moving_mean, self.moving_variance)
        # Ragged widths are multiples of context.channel_multiple, or the full size.
        fusable = context.channel_multiple % 4 == 0 and self.units % 4 == 0
        return batch_norm(
            y,
            weights,
            out,
            context,
            self.batch_norm_momentum,
            self.batch_norm_epsilon,
            scale=scale,
            fusable=fusable,
        )

    @property
    def kernel_input_axis(self):
        return len(self.kernel.shape) - 2

    def gather_kernel_rows(self, context, on=1.0):
        """`KernelRows` at the active input channels (None when the input runs at full width).

        Records the rows in `context.kernel_rows`, so the pass convolves with this very tensor;
        `on` is the enclosing block's 0/1 gate.
        """
        inputs = context.active(self.input_group)
        if inputs.known_complete:  # read whole; `weight_masks` masks its update
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
        return gather(
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
        kernel = gather(self._input_rows(context), context.active(self.output_group), 3, context)
        y = conv2d_same(inputs, cast_like(kernel, inputs), self.strides)  # strided 1x1: oneDNN#6035
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
        kernel = gather(self._input_rows(context), context.active(self.output_group), 1, context)
        return self._finish(tf.matmul(inputs, cast_like(kernel, inputs)), context)

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
