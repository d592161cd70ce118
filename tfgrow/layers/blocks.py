"""Growable residual and plain blocks with optional layer masks (METHOD.md §1.1, Eq. 2).

A basic block is conv3x3-BN-ReLU-conv3x3-BN. Residual: `relu(shortcut(x) + m_l * F(x))`. Plain
(AutoGrow's PlainLayers, a residual block with its shortcut removed): `m_l * relu(F(x)) +
(1 - m_l) * x`. A block that keeps shape may carry a layer mask; when its sampled gate is 0 the
block is not computed (it runs on one example, zeroed), and its output is its input. The first
block of a stage (strided or projecting) has no layer mask: it always exists.
"""

import keras
import tensorflow as tf

from tfgrow.compact import run_if_on
from tfgrow.layers.conv import GrowableConv2D
from tfgrow.precision import cast_like


@keras.saving.register_keras_serializable(package="tfgrow")
class GrowableBlock(keras.layers.Layer):
    """A basic residual or plain block whose filters (and, optionally, existence) are learned.

    Args:
        filters: maximal width of both convolutions.
        input_group: channel group of the input stream.
        inner_group: channel group of the first convolution's output.
        output_group: channel group of the output stream (shared by every producer that adds
            into it: the residual tie of METHOD.md §1.1).
        strides: stride of the first convolution.
        residual: residual (True) or plain (False) block.
        projection: add a 1x1 conv + BN shortcut (residual blocks that change shape).
        gated: whether the block has a layer mask; its name is the block's name.

    Call arguments:
        inputs: NHWC tensor on the input group's active set.
        context: an `ExecutionContext`.
    """

    def __init__(
        self,
        filters,
        input_group,
        inner_group,
        output_group,
        strides=1,
        residual=True,
        projection=False,
        gated=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if gated and (strides != 1 or projection or input_group != output_group):
            raise ValueError(
                "Expected a gated block to keep its shape (stride 1, no projection, same input "
                f"and output group). Received: strides={strides}, projection={projection}, "
                f"input_group={input_group!r}, output_group={output_group!r}"
            )
        self.filters = int(filters)
        self.input_group = input_group
        self.inner_group = inner_group
        self.output_group = output_group
        self.strides = int(strides)
        self.residual = residual
        self.projection = projection
        self.gated = gated
        block = self.name if gated else None
        self.conv1 = GrowableConv2D(
            filters,
            3,
            strides,
            input_group=input_group,
            output_group=inner_group,
            block=block,
            name=f"{self.name}_conv1",
        )
        self.conv2 = GrowableConv2D(
            filters,
            3,
            1,
            input_group=inner_group,
            output_group=output_group,
            activation="relu" if not residual else "linear",
            block=block,
            name=f"{self.name}_conv2",
        )
        self.shortcut = (
            GrowableConv2D(
                filters,
                1,
                strides,
                input_group=input_group,
                output_group=output_group,
                activation="linear",
                name=f"{self.name}_shortcut",
            )
            if projection
            else None
        )

    @property
    def gate_name(self):
        return self.name if self.gated else None

    def build(self, input_shape):
        input_shape = tuple(input_shape)
        self.conv1.build(input_shape)
        self.conv2.build((*input_shape[:-1], self.filters))
        if self.shortcut is not None:
            self.shortcut.build(input_shape)
        self.built = True

    def conv_layers(self):
        layers = [self.conv1, self.conv2]
        return layers + ([self.shortcut] if self.shortcut is not None else [])

    def _body(self, inputs, context):
        return self.conv2(self.conv1(inputs, context=context), context=context)

    def call(self, inputs, context):
        gate = context.gate(self.gate_name)
        if gate is None:
            body = self._body(inputs, context)
            if not self.residual:
                return body
            shortcut = (
                self.shortcut(inputs, context=context) if self.shortcut is not None else inputs
            )
            return tf.nn.relu(shortcut + body)
        body = run_if_on(self._body, inputs, gate.on, context)
        value = tf.where(gate.on, gate.value, tf.zeros_like(gate.value))
        value = cast_like(value, body)  # float32 gate, activations in the compute dtype
        if self.residual:
            return tf.nn.relu(inputs + value * body)
        return value * body + (1.0 - value) * inputs

    def output_spatial(self, height, width):
        return self.conv1.output_spatial(height, width)

    def layer_costs(self, height, width):
        """LayerCost of each conv, at the spatial size each one actually produces."""
        out_height, out_width = self.output_spatial(height, width)
        return [layer.layer_cost(out_height, out_width) for layer in self.conv_layers()]

    def get_config(self):
        config = super().get_config()
        config.update(
            filters=self.filters,
            input_group=self.input_group,
            inner_group=self.inner_group,
            output_group=self.output_group,
            strides=self.strides,
            residual=self.residual,
            projection=self.projection,
            gated=self.gated,
        )
        return config
