"""Compact executors: one per stock Keras layer type, run on the active channels only.

Each executor reads its layer's full-size weights, gathers them at the active input and output
channels (`W[..., in_idx, out_idx]`, BN parameters at the active channels) and computes only
those channels (DESIGN.md, "Compact execution"); the LSTM, GRU and Embedding executors live in
`tfgrow.growing.recurrent`. Layers without weights that treat channels alike (activations,
pooling, padding, dropout, merges, Flatten) are called as they are on the compact tensors.

Mixed precision (`tfgrow.precision`): weights are gathered in float32 and cast to the
activations' dtype where they meet them; batch norm keeps its statistics in float32.

Mask values (METHOD.md §1.1, `y = m * BN(conv(x))`): every BatchNormalization folds the mask
values of its channels into gamma and beta (so a channel switched off stays off after later
batch norms, e.g. after a depthwise conv), and a producer whose output is not read by a batch
norm alone multiplies its output by them.
"""

import dataclasses

import keras
import tensorflow as tf

import tfgrow.conv_ops  # noqa: F401  (installs the oneDNN#6035 gradient guard)
import tfgrow.growing.recurrent as recurrent_lib
from tfgrow.compact import BatchNormWeights, batch_norm, gather, kernel_rows
from tfgrow.graph.analysis import TIES
from tfgrow.graph.recurrent import RECURRENT, SEQUENCE_PRODUCERS, num_gates
from tfgrow.precision import cast_like

L = keras.layers
MERGES = (*TIES, L.Concatenate)


@dataclasses.dataclass(frozen=True)
class Kernel:
    """A weight whose input-channel axis follows one of the layer's layouts.

    Attributes:
        variable: the Keras variable.
        axis: its input-channel axis.
        has_output_axis: whether its last axis follows the output layout (conv, dense, pointwise
            kernels) rather than a depth multiplier of 1 (depthwise kernels).
        rows_follow_output: whether its input-channel axis follows the layer's output layout
            (an LSTM's recurrent kernel: rows per unit) rather than its input layout.
        gates: the output axis holds this many blocks of the output layout (LSTM 4, GRU 3).
    """

    variable: object
    axis: int
    has_output_axis: bool
    rows_follow_output: bool = False
    gates: int = 1

    def row_layout(self, spec):
        """The layout of the kernel's input-channel axis in node `spec`."""
        return spec.output_layout if self.rows_follow_output else spec.input_layouts[0]


def kernels_of(layer):
    """The `Kernel`s of a conv/dense/LSTM/GRU layer (empty for other layers)."""
    if isinstance(layer, RECURRENT):
        gates = num_gates(layer)
        return [
            Kernel(layer.cell.kernel, 0, True, gates=gates),
            Kernel(layer.cell.recurrent_kernel, 0, True, rows_follow_output=True, gates=gates),
        ]
    if isinstance(layer, L.SeparableConv2D):
        return [
            Kernel(layer.depthwise_kernel, 2, False),
            Kernel(layer.pointwise_kernel, 2, True),
        ]
    if isinstance(layer, L.DepthwiseConv2D):
        return [Kernel(layer.kernel, 2, False)]
    if isinstance(layer, L.Conv2D):
        return [Kernel(layer.kernel, 2, True)]
    if isinstance(layer, L.Dense):
        return [Kernel(layer.kernel, 0, True)]
    return []


def is_producer(layer):
    """Layers that start a channel group (their output channels are their own structures)."""
    if isinstance(layer, SEQUENCE_PRODUCERS):
        return True
    return isinstance(layer, L.Conv2D | L.Dense | L.SeparableConv2D) and not isinstance(
        layer, L.DepthwiseConv2D
    )


def _rows(kernel, active, context):
    """The kernel at the active input channels: pre-gathered rows, or gathered here."""
    return kernel_rows(kernel.variable, active, kernel.axis, context)


def _finish(layer, y, bias_set, context):
    if layer.use_bias:
        y = y + cast_like(gather(layer.bias, bias_set, 0, context), y)
    return layer.activation(y)


def _conv_arguments(layer):
    return {
        "padding": layer.padding.upper(),
        "dilations": list(layer.dilation_rate),
    }


def conv2d(layer, x, in_set, out_set, context):
    kernel = kernels_of(layer)[0]
    weights = gather(_rows(kernel, in_set, context), out_set, 3, context)
    y = tf.nn.conv2d(x, cast_like(weights, x), list(layer.strides), **_conv_arguments(layer))
    return _finish(layer, y, out_set, context)


def depthwise_conv2d(layer, x, in_set, context):
    weights = _rows(kernels_of(layer)[0], in_set, context)
    y = _depthwise(x, weights, layer)
    return _finish(layer, y, in_set, context)


def _depthwise(x, weights, layer):
    strides = [1, *layer.strides, 1]
    return tf.nn.depthwise_conv2d(x, cast_like(weights, x), strides, **_conv_arguments(layer))


def separable_conv2d(layer, x, in_set, out_set, context):
    depthwise, pointwise = kernels_of(layer)
    y = _depthwise(x, _rows(depthwise, in_set, context), layer)
    weights = gather(_rows(pointwise, in_set, context), out_set, 3, context)
    y = tf.nn.conv2d(y, cast_like(weights, y), 1, padding="VALID")
    return _finish(layer, y, out_set, context)


def dense(layer, x, in_set, out_set, context):
    kernel = kernels_of(layer)[0]
    weights = cast_like(gather(_rows(kernel, in_set, context), out_set, 1, context), x)
    if len(x.shape) == 2:
        y = tf.matmul(x, weights)
    else:
        y = tf.tensordot(x, weights, [[len(x.shape) - 1], [0]])
    return _finish(layer, y, out_set, context)


def batch_normalization(layer, x, active, context, fusable):
    """Keras BatchNormalization on the active channels, mask values folded into its scale."""
    weights = BatchNormWeights(
        layer.gamma if layer.scale else None,
        layer.beta if layer.center else None,
        layer.moving_mean,
        layer.moving_variance,
    )
    return batch_norm(
        x,
        weights,
        active,
        context,
        layer.momentum,
        layer.epsilon,
        scale=active.values,
        fusable=fusable,
    )


def reshape(layer, x, output_shape):
    """Reshape that keeps whole groups per row: every row holds the compact channels."""
    leading = [int(d) for d in output_shape[1:-1]]
    return tf.reshape(x, [tf.shape(x)[0], *leading, -1])


def execute(layer, inputs, sets, spec, context):
    """Runs one node compactly.

    Args:
        layer: the Keras layer.
        inputs: its compact input tensors.
        sets: the pass' `LayoutSets`.
        spec: the node's `NodeSpec` (layouts, output shape, whether to apply mask values).
        context: the `ExecutionContext`.

    Returns:
        The compact output tensor.
    """
    x = inputs[0]
    in_set = sets(spec.input_layouts[0]) if spec.input_layouts else None
    out_set = sets(spec.output_layout)
    if isinstance(layer, L.BatchNormalization):
        return batch_normalization(layer, x, out_set, context, sets.fusable(spec.output_layout))
    if isinstance(layer, RECURRENT):  # applies its mask values inside the recurrence
        return recurrent_lib.recurrent(layer, x, in_set, out_set, context)
    if isinstance(layer, L.Embedding):
        y = recurrent_lib.embedding(layer, x, out_set, context)
    elif isinstance(layer, L.SeparableConv2D):
        y = separable_conv2d(layer, x, in_set, out_set, context)
    elif isinstance(layer, L.DepthwiseConv2D):
        y = depthwise_conv2d(layer, x, in_set, context)
    elif isinstance(layer, L.Conv2D):
        y = conv2d(layer, x, in_set, out_set, context)
    elif isinstance(layer, L.Dense):
        y = dense(layer, x, in_set, out_set, context)
    elif isinstance(layer, L.Reshape):
        return reshape(layer, x, spec.output_shape)
    elif isinstance(layer, MERGES):
        return layer(list(inputs), training=context.training)
    else:
        return layer(x, training=context.training)
    if spec.applies_mask and out_set.values is not None:
        y = y * cast_like(out_set.values, y)
    return y
