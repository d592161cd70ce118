"""Channel groups of a Keras functional model (METHOD.md §2), read from its layer graph.

The analysis walks the functional graph (layers and their inbound nodes, never TF op names) and
describes the channel (last) axis of every tensor as a *layout*: a tuple of channel groups, each
contributing all of its channels in order. A group is a set of layer outputs whose channels are
the same channels:

- Conv2D, Dense and SeparableConv2D create a new group (their `filters`/`units`); so do LSTM,
  GRU (hidden units) and Embedding (output dimensions), see `tfgrow.graph.recurrent`.
- Add, Subtract, Average, Maximum, Minimum and Multiply tie their inputs channel by channel, so the
  groups in the same positions merge (residual streams, squeeze-and-excitation gates). An input
  with one channel that broadcasts (e.g. a spatial attention map) is fixed instead.
- Concatenate (on the channel axis) concatenates layouts; Flatten repeats the layout once per
  spatial position; Reshape keeps whole groups per row of the new last axis.
- DepthwiseConv2D (depth_multiplier 1), BatchNormalization, activations, dropout, pooling,
  padding, cropping and up-sampling pass the layout through. Each BatchNormalization records its
  gamma against the channels it scales.

A group is *prunable* when some BatchNormalization gamma scales it (or an LSTM, GRU or Embedding
produces it) and no member must keep its width: the model's inputs and outputs, broadcast inputs
and channels that pass through a layer with per-channel constants the analysis does not slice
(Normalization, per-channel Rescaling, Softmax) are fixed. Fixed groups keep their full width;
they are listed in `fixed_groups`. Any other layer stops the analysis with an error that names
it.
"""

import math

import keras
import numpy as np

import tfgrow.graph.recurrent as recurrent

# Re-exported: MorphNet and the launchers read RESOURCES and check_resource from here.
from tfgrow.graph.channel_graph import (  # noqa: F401
    RESOURCES,
    ChannelGraph,
    CostTerm,
    check_resource,
)
from tfgrow.graph.nodes import nodes_in_order

L = keras.layers

PRODUCERS = (L.Conv2D, L.Dense, L.SeparableConv2D)
TIES = (L.Add, L.Subtract, L.Average, L.Maximum, L.Minimum, L.Multiply)
PASS_THROUGH = (
    L.Activation,
    L.ReLU,
    L.LeakyReLU,
    L.ELU,
    L.Dropout,
    L.SpatialDropout2D,
    L.GaussianNoise,
    L.GaussianDropout,
    L.AlphaDropout,
    L.ActivityRegularization,
    L.Identity,
    L.MaxPooling2D,
    L.AveragePooling2D,
    L.GlobalAveragePooling2D,
    L.GlobalMaxPooling2D,
    L.ZeroPadding2D,
    L.Cropping2D,
    L.UpSampling2D,
)
# Pass the layout through, but hold per-channel constants (or mix channels): fixed channels only.
FIXED_PASS_THROUGH = (L.Normalization, L.Rescaling, L.Softmax)


class UnsupportedLayerError(ValueError):
    """A layer the channel analysis cannot handle; the message names it and says what to do."""


class _UnionFind:
    def __init__(self):
        self.parent = []

    def add(self):
        self.parent.append(len(self.parent))
        return len(self.parent) - 1

    def find(self, item):
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def union(self, a, b):
        a, b = self.find(a), self.find(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)  # the earlier source names the group


def _error(layer, what):
    return UnsupportedLayerError(
        f"The channel graph (MorphNet, growing) cannot take layer {layer.name!r} "
        f"({type(layer).__name__}): {what}"
    )


def _spatial(shape, layer):
    dims = shape[1:-1]
    if any(d is None for d in dims):
        raise _error(
            layer,
            f"its output shape {shape} has unknown spatial dimensions; build the "
            "model with a fixed input_shape",
        )
    return math.prod(dims)


def analyze(model, tied_layers=(), gamma_required=True, fixed_layers=()):
    """Channel groups, layouts and cost terms of a functional Keras model.

    Args:
        model: a functional `keras.Model` built from the layers listed in the module docstring.
        tied_layers: pairs of layer names whose outputs carry the same channels although no
            merge ties them in the graph (a plain block `m F(x) + (1 - m) x` of growing).
        gamma_required: a group is prunable only where a BatchNormalization gamma scales it
            (MorphNet regularises gammas). Growing multiplies a producer's output by its mask
            values where no batch norm reads it, so it passes False: every conv/dense output
            is prunable unless another reason fixes it (a model output, a broadcast, ...).
        fixed_layers: names of layers whose output channels keep their full width (with every
            channel tied to them), e.g. a language model's embedding, which the paper does not
            grow.

    Returns:
        A `ChannelGraph`.

    Raises:
        UnsupportedLayerError: (a ValueError) for a layer the analysis cannot handle.
    """
    walk = _Walk(gamma_required)
    order = nodes_in_order(model)
    for layer, node in order:  # mask_zero adds mask ops to the graph: name the Embedding first
        problem = isinstance(layer, L.Embedding) and recurrent.unsupported(layer, node)
        if problem:
            raise _error(layer, problem)
    for layer, node in order:
        walk.visit(layer, node)
    for first, second in tied_layers:
        layouts = [
            _layer_layout(walk, name, f"tied layers {(first, second)!r}")
            for name in (first, second)
        ]
        walk.tie(model.get_layer(second), *layouts)
    for tensor in model.outputs:
        for source in walk.layouts[id(tensor)]:
            walk.source_fixed.setdefault(source, "model output")
    for name in fixed_layers:
        for source in _layer_layout(walk, name, "fixed_layers"):
            walk.source_fixed.setdefault(source, f"kept at full width (fixed_layers: {name!r})")
    return walk.channel_graph()


def _layer_layout(walk, name, argument):
    """The output layout of the layer called `name`; an unknown name stops with the known ones."""
    if name not in walk.output_layouts:
        raise ValueError(
            f"Expected layer names of the model in {argument}. Received: {name!r}; the model "
            f"has {list(walk.output_layouts)[:8]}..."
        )
    return walk.output_layouts[name]


class _Walk:
    """The analysis' state while it walks the graph: channel *sources* (one per producer or
    input, merged by ties into groups) and the layout of every tensor as a tuple of sources."""

    def __init__(self, gamma_required=True):
        self.gamma_required = gamma_required
        self.sources = _UnionFind()
        self.source_sizes, self.source_names, self.source_fixed = [], [], {}
        self.layouts = {}  # id(KerasTensor) -> tuple of sources
        self.input_layouts, self.output_layouts, self.gamma_layouts = {}, {}, []
        self.raw_terms, self.width_layers = [], []
        # Prunable without a BN gamma: recurrent and embedding outputs, and every producer's
        # when gamma_required is False.
        self.gateless_sources = set()
        self.seen_layers = set()

    def new_source(self, name, size, fixed_reason=None):
        index = self.sources.add()
        self.source_sizes.append(int(size))
        self.source_names.append(name)
        if fixed_reason:
            self.source_fixed[index] = fixed_reason
        return index

    def tie(self, layer, first, second):
        sizes, names = self.source_sizes, self.source_names
        if len(first) != len(second) or any(sizes[a] != sizes[b] for a, b in zip(first, second)):
            raise _error(
                layer,
                "its inputs' channels come from differently split sources "
                f"({[names[s] for s in first]} vs {[names[s] for s in second]}); "
                "tie whole layer outputs only (e.g. add a 1x1 conv before the merge)",
            )
        for a, b in zip(first, second):
            self.sources.union(a, b)

    def visit(self, layer, node):
        """Records the layout of the node's output (and its cost term, gamma, ties)."""
        if isinstance(layer, keras.Model):
            raise _error(layer, "nested models are not analysed; build one flat functional model")
        if layer.name in self.seen_layers:
            raise _error(layer, "it is called more than once (shared layers are not supported)")
        self.seen_layers.add(layer.name)
        inputs = [self.layouts[id(t)] for t in node.input_tensors]
        out_shape = node.outputs[0].shape
        layout_in = inputs[0] if inputs else ()
        out = self._output_layout(layer, node, inputs, layout_in, out_shape)
        if len(node.outputs) != 1:
            raise _error(layer, "layers with several outputs are not supported")
        width = sum(self.source_sizes[s] for s in out)
        if width != out_shape[-1]:
            raise _error(
                layer, f"channel bookkeeping found {width} channels, the layer has {out_shape[-1]}"
            )
        self.layouts[id(node.outputs[0])] = out
        self.input_layouts[layer.name] = layout_in
        self.output_layouts[layer.name] = out

    def _output_layout(self, layer, node, inputs, layout_in, out_shape):
        if isinstance(layer, L.InputLayer):
            return (self.new_source(layer.name, out_shape[-1], "model input"),)
        if isinstance(layer, PRODUCERS):
            return self._producer(layer, layout_in, out_shape)
        if isinstance(layer, recurrent.SEQUENCE_PRODUCERS):
            problem = recurrent.unsupported(layer, node)
            if problem:
                raise _error(layer, problem)
            out = (self.new_source(layer.name, recurrent.width(layer)),)
            self.gateless_sources.add(out[0])
            self.raw_terms += recurrent.cost_terms(layer, node, layout_in, out)
            self.width_layers.append(layer.name)
            return out
        if isinstance(layer, L.Bidirectional):
            raise _error(layer, "Bidirectional is not supported; use LSTM or GRU layers alone")
        if isinstance(layer, L.DepthwiseConv2D):
            if layer.depth_multiplier != 1:
                raise _error(
                    layer,
                    "depth_multiplier must be 1 (a multiplier > 1 ties "
                    "several outputs to one input channel)",
                )
            kh, kw = layer.kernel_size
            positions = _spatial(out_shape, layer)
            self.raw_terms.append(
                (layer.name, "depthwise", 2 * positions * kh * kw, kh * kw, layout_in, layout_in)
            )
            self.width_layers.append(layer.name)
            return layout_in
        if isinstance(layer, L.BatchNormalization):
            axis = layer.axis if isinstance(layer.axis, int) else layer.axis[0]
            if axis not in (-1, len(out_shape) - 1):
                raise _error(
                    layer,
                    f"it normalises axis {layer.axis}; only the last (channel) axis is supported",
                )
            if layer.scale:
                self.gamma_layouts.append((layer.name, layout_in))
            return layout_in
        if isinstance(layer, TIES):
            return self._merge(layer, node, inputs)
        if isinstance(layer, L.Concatenate):
            if layer.axis not in (-1, len(out_shape) - 1):
                raise _error(
                    layer, f"it concatenates axis {layer.axis}; only the channel axis is supported"
                )
            return tuple(s for tensor_layout in inputs for s in tensor_layout)
        if isinstance(layer, L.Flatten):
            return layout_in * math.prod(node.input_tensors[0].shape[1:-1])
        if isinstance(layer, L.Reshape):
            return _reshape_layout(layer, node, layout_in, self.source_sizes)
        if isinstance(layer, PASS_THROUGH):
            if isinstance(layer, L.GlobalAveragePooling2D | L.GlobalMaxPooling2D):
                if layer.data_format != "channels_last":
                    raise _error(layer, "only channels_last is supported")
            return layout_in
        if isinstance(layer, FIXED_PASS_THROUGH):
            for source in layout_in:
                self.source_fixed.setdefault(source, f"passes through {layer.name}")
            return layout_in
        raise _error(
            layer,
            "this layer type is not supported. Supported: Conv2D, DepthwiseConv2D, "
            "SeparableConv2D, Dense, LSTM, GRU, Embedding, BatchNormalization, Add/Multiply "
            "and other merges, Concatenate, pooling, padding, activations, dropout, "
            "Reshape/Flatten. Replace it with those, or keep it out of the analysed model",
        )

    def _producer(self, layer, layout_in, out_shape):
        """A conv/dense layer: a new source, and its cost term(s)."""
        if isinstance(layer, L.Conv2D) and not isinstance(layer, L.SeparableConv2D):
            if getattr(layer, "groups", 1) != 1:
                raise _error(layer, "grouped convolutions are not supported; use groups=1")
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise _error(layer, "only channels_last is supported")
        if isinstance(layer, L.Dense):
            units = layer.units
            positions = math.prod(d for d in out_shape[1:-1]) if len(out_shape) > 2 else 1
            kh, kw = (1, 1)
        else:
            units = layer.filters
            positions = _spatial(out_shape, layer)
            kh, kw = tuple(layer.kernel_size)
        out = (self.new_source(layer.name, units),)
        if not self.gamma_required:
            self.gateless_sources.add(out[0])
        if isinstance(layer, L.SeparableConv2D):
            if layer.depth_multiplier != 1:
                raise _error(layer, "depth_multiplier must be 1")
            self.raw_terms.append(
                (layer.name, "depthwise", 2 * positions * kh * kw, kh * kw, layout_in, layout_in)
            )
            self.raw_terms.append(
                (layer.name + "/pointwise", "conv", 2 * positions, 1, layout_in, out)
            )
        else:
            self.raw_terms.append(
                (layer.name, "conv", 2 * positions * kh * kw, kh * kw, layout_in, out)
            )
        self.width_layers.append(layer.name)
        return out

    def _merge(self, layer, node, inputs):
        """Add/Multiply/...: ties the inputs' channels; a broadcast one-channel input is fixed."""
        channel_counts = [t.shape[-1] for t in node.input_tensors]
        full = max(channel_counts)
        wide = []
        for tensor_layout, count in zip(inputs, channel_counts):
            if count == 1 and full > 1:
                for source in tensor_layout:
                    self.source_fixed.setdefault(source, f"broadcast into {layer.name}")
            else:
                wide.append(tensor_layout)
        for other in wide[1:]:
            self.tie(layer, wide[0], other)
        return wide[0]

    def channel_graph(self):
        """The `ChannelGraph`: groups numbered by their root source, in graph order."""
        sources = self.sources
        roots = sorted({sources.find(s) for s in range(len(self.source_sizes))})
        group_of_root = {root: g for g, root in enumerate(roots)}

        def to_groups(layout):
            return tuple(group_of_root[sources.find(s)] for s in layout)

        num_groups = len(roots)
        has_gamma = np.zeros(num_groups, bool)
        has_gamma[[group_of_root[sources.find(s)] for s in self.gateless_sources]] = True
        for _, layout in self.gamma_layouts:
            for g in to_groups(layout):
                has_gamma[g] = True
        fixed_reasons = {}
        for source, reason in self.source_fixed.items():
            fixed_reasons.setdefault(group_of_root[sources.find(source)], reason)
        for g in range(num_groups):
            if not has_gamma[g]:
                fixed_reasons.setdefault(g, "no BatchNormalization gamma scales it")
        return ChannelGraph(
            group_names=[self.source_names[root] for root in roots],
            group_sizes=np.array([self.source_sizes[root] for root in roots], np.int64),
            fixed=np.array([g in fixed_reasons for g in range(num_groups)], bool),
            input_layouts={k: to_groups(v) for k, v in self.input_layouts.items()},
            output_layouts={k: to_groups(v) for k, v in self.output_layouts.items()},
            gamma_layers=[name for name, _ in self.gamma_layouts],
            cost_terms=[
                CostTerm(name, kind, int(fc), int(sc), to_groups(lin), to_groups(lout))
                for name, kind, fc, sc, lin, lout in self.raw_terms
            ],
            width_layers={name: self.output_layouts[name] for name in self.width_layers},
            fixed_reasons=fixed_reasons,
        )


def _reshape_layout(layer, node, layout_in, source_sizes):
    """Reshape keeps whole sources per row of its new last axis, the same in every row."""
    in_shape = node.input_tensors[0].shape
    out_shape = node.outputs[0].shape
    if any(d is None for d in list(in_shape[1:]) + list(out_shape[1:])):
        raise _error(layer, "unknown dimensions; build the model with a fixed input_shape")
    flat = list(layout_in) * math.prod(in_shape[1:-1])
    row_width = out_shape[-1]
    rows, row, width = [], [], 0
    for source in flat:
        row.append(source)
        width += source_sizes[source]
        if width == row_width:
            rows.append(tuple(row))
            row, width = [], 0
        elif width > row_width:
            break
    if row or not rows or any(r != rows[0] for r in rows):
        raise _error(
            layer,
            f"reshaping {tuple(in_shape)} to {tuple(out_shape)} splits or reorders channel "
            "groups; only reshapes that keep whole channel groups along the last axis (e.g. "
            "(C,) -> (1, 1, C), flattening) are supported",
        )
    return rows[0]
