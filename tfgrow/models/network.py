"""GrowingNetwork: a sequence of growable layers plus the mask groups they obey.

The network owns every `MaskGroup` (channel groups and block gates), so its state is checkpointed
and distributed with the model. Contexts (sampled, H(s), full), counts and penalties come from
`tfgrow.growing.structures.MaskedStructures`, shared with the graph engine's `GrowingModel`.
"""

import keras
import tensorflow as tf

from tfgrow.growing.structures import MaskedStructures, pop_inference_config
from tfgrow.layers.blocks import GrowableBlock
from tfgrow.masks import MaskGroup
from tfgrow.precision import to_float32


@keras.saving.register_keras_serializable(package="tfgrow")
class GrowingNetwork(MaskedStructures, keras.Model):
    """A network of growable layers, executed on the active channels and blocks only.

    Args:
        layers: ordered growable layers (GrowableConv2D, GrowableBlock, Pool2D, GrowableDense);
            each is called as `layer(x, context=context)`.
        groups: the channel `MaskGroup`s the layers name; gates are created for gated blocks.
        input_shape: (H, W, C) of the input images.
        growing: False builds the plain full network: no sampling, every structure on.
        seed_blocks_on: gated blocks that start on (METHOD.md §1.5: none; the first block of a
            stage is ungated and always on).
    """

    def __init__(self, layers, groups, input_shape, growing=True, channel_multiple=1, **kwargs):
        super().__init__(**kwargs)
        self.channel_multiple = int(channel_multiple)
        self.layer_sequence = list(layers)
        self.growing = growing
        self.input_spec_shape = tuple(int(d) for d in input_shape)
        self.channel_groups = {group.name: group for group in groups}
        gated = [layer for layer in self.layer_sequence if isinstance(layer, GrowableBlock)]
        self.gate_groups = {
            block.name: MaskGroup(1, kind="layer", num_on=0, name=block.name + "_gate")
            for block in gated
            if block.gated
        }
        self._build_all()

    # ----------------------------------------------------------------- structure
    def _build_all(self):
        for group in list(self.channel_groups.values()) + list(self.gate_groups.values()):
            group.build()
        height, width, channels = self.input_spec_shape
        shape = (None, height, width, channels)
        costs = []
        for layer in self.layer_sequence:
            if not layer.built:
                layer.build(shape)
            if hasattr(layer, "layer_costs"):
                costs += layer.layer_costs(height, width)
            height, width = layer.output_spatial(height, width)
            shape = self._output_shape(layer, shape, height, width)
        self.layer_costs = costs
        for name, cost in ((c.output_group, c) for c in costs):
            if name is not None and name not in self.channel_groups:
                raise ValueError(f"Layer {cost.name!r} names an unknown channel group {name!r}")
        self.built = True

    @staticmethod
    def _conv_layers_of(layer):
        if isinstance(layer, GrowableBlock):
            return layer.conv_layers()
        return [layer] if hasattr(layer, "layer_cost") else []

    @staticmethod
    def _output_shape(layer, shape, height, width):
        if hasattr(layer, "filters"):
            return (None, height, width, layer.filters)
        if hasattr(layer, "units"):
            return (None, layer.units)
        if getattr(layer, "kind", None) == "global_average":
            return (None, shape[-1])
        return (None, height, width, shape[-1])

    def groups_parent(self):
        """Channel group -> enclosing gate name (None when not inside a gated block)."""
        parents = {name: None for name in self.channel_groups}
        for layer in self.layer_sequence:
            if isinstance(layer, GrowableBlock) and layer.gated:
                parents[layer.inner_group] = layer.name
        return parents

    # ----------------------------------------------------------------- execution
    def forward(self, inputs, context):
        self.check_input_shape(inputs)
        x = inputs
        for layer in self.layer_sequence:
            x = layer(x, context=context)
        return to_float32(x)  # float32 outputs under a mixed policy: the loss stays float32

    def check_input_shape(self, inputs):
        """Raises ValueError unless `inputs` is a batch of the images this network was built for.

        A network built for 28x28x1 would otherwise run on 32x32x1 images (its convolutions and
        global pooling accept any size) and return a wrong result without a word.
        """
        shape = tuple(inputs.shape)
        expected = (None, *self.input_spec_shape)
        known = [(got, want) for got, want in zip(shape[1:], expected[1:]) if got is not None]
        if len(shape) == len(expected) and all(got == want for got, want in known):
            return
        raise ValueError(
            f"Expected images of shape (batch, {', '.join(map(str, self.input_spec_shape))}), "
            f"the shape {self.name} was built for. Received: inputs of shape {shape}. Fix: "
            "resize the images, or build the network for them (the builder's input_shape)."
        )

    def gather_kernel_rows(self, context):
        """[`KernelRows`] of every kernel whose input runs below full width in `context`.

        Call inside the gradient tape, before `forward`: the pass then uses these rows, and the
        training step updates them compactly (DESIGN.md, "Compact execution": the update costs
        what the sub-network's weights cost, not passes over the maximal network's).
        """
        result = []
        for layer in self.layer_sequence:
            for conv in self._conv_layers_of(layer):
                rows = conv.gather_kernel_rows(context, self.gate_on(context, conv.block))
                if rows is not None:
                    result.append(rows)
        return result

    def weight_masks(self, context):
        """id(variable) -> 0/1 mask of entries computed in this pass; absent means all."""
        masks = {}
        for layer in self.layer_sequence:
            for conv in self._conv_layers_of(layer):
                on = self.gate_on(context, conv.block)
                layer_masks = conv.weight_masks(context)
                if conv.block is not None and context.gate(conv.block) is not None:
                    variables = [conv.kernel] + [
                        v
                        for v in (
                            conv.bias,
                            getattr(conv, "gamma", None),
                            getattr(conv, "beta", None),
                        )
                        if v is not None
                    ]
                    for variable in variables:
                        base = layer_masks.get(id(variable), tf.ones(variable.shape))
                        layer_masks[id(variable)] = base * on
                masks.update(layer_masks)
        return masks

    def all_block_names(self):
        return [layer.name for layer in self.layer_sequence if isinstance(layer, GrowableBlock)]

    def get_config(self):
        """Layers and groups as nested Keras configs, so `keras.models.load_model` rebuilds it."""
        return {
            "name": self.name,
            "layers": [keras.saving.serialize_keras_object(x) for x in self.layer_sequence],
            "groups": [
                keras.saving.serialize_keras_object(g) for g in self.channel_groups.values()
            ],
            "input_shape": list(self.input_spec_shape),
            "growing": self.growing,
            "channel_multiple": self.channel_multiple,
            **self.inference_config(),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        inference = pop_inference_config(config)
        for key in ("layers", "groups"):
            # Unbuilt: the network builds its layers and groups itself, once, in __init__.
            config[key] = [
                keras.saving.deserialize_keras_object(
                    {k: v for k, v in item.items() if k != "build_config"},
                    custom_objects=custom_objects,
                )
                for item in config[key]
            ]
        network = cls(**config)
        network.set_inference_config(inference)
        return network
