"""The result of the channel analysis (`tfgrow.graph.analysis`): groups, layouts, cost terms.

`ChannelGraph` answers what MorphNet, growing, counting and slicing ask of an analysed model: the
width of every layout, the cost of the network at any group widths (METHOD.md §2's kernel terms,
a term quadratic in one group included: an LSTM's recurrent kernel), the structure JSON.
"""

import dataclasses

import numpy as np

RESOURCES = ("flops", "size")


@dataclasses.dataclass(frozen=True)
class CostTerm:
    """One conv/dense (or the depthwise half of a separable conv) as METHOD.md §2 costs it.

    Attributes:
        layer: the layer's name.
        kind: "conv" (cost C |A| |B|; Dense, pointwise convs, LSTM/GRU kernels too),
            "depthwise" or "embedding" (C |B|).
        flops_coefficient: 2 * H_out * W_out * kh * kw (Dense: 2 per output position; LSTM/GRU:
            2 * gates * T; Embedding: 0).
        size_coefficient: kh * kw (Dense: 1; LSTM/GRU: gates; Embedding: vocabulary size).
        input_layout: groups of the input channels, in order.
        output_layout: groups of the output channels, in order.
    """

    layer: str
    kind: str
    flops_coefficient: int
    size_coefficient: int
    input_layout: tuple
    output_layout: tuple

    def coefficient(self, resource):
        return self.flops_coefficient if resource == "flops" else self.size_coefficient


@dataclasses.dataclass
class ChannelGraph:
    """The result of `analyze`: groups, layouts, gammas and cost terms of one model.

    Attributes:
        group_names: name of each group (its first producing layer, or the input's name).
        group_sizes: full width of each group.
        fixed: per group, True when its width cannot change.
        input_layouts, output_layouts: layer name -> layout (tuple of group indices).
        gamma_layers: names of the BatchNormalization layers with a gamma, in graph order.
        cost_terms: the CostTerm of every conv/dense layer.
        width_layers: conv/dense/depthwise layer name -> the group of its output channels (the
            keys of the structure JSON).
        fixed_reasons: group index -> why it is fixed.
    """

    group_names: list
    group_sizes: np.ndarray
    fixed: np.ndarray
    input_layouts: dict
    output_layouts: dict
    gamma_layers: list
    cost_terms: list
    width_layers: dict
    fixed_reasons: dict

    @property
    def num_groups(self):
        return len(self.group_names)

    @property
    def prunable(self):
        return ~self.fixed

    @property
    def fixed_groups(self):
        return {self.group_names[g]: reason for g, reason in self.fixed_reasons.items()}

    def layout_width(self, layout, widths=None):
        widths = self.group_sizes if widths is None else widths
        return int(sum(int(widths[g]) for g in layout))

    def count_matrix(self, side):
        """(num_terms, num_groups) multiplicities of each group in each term's in/out layout."""
        matrix = np.zeros((len(self.cost_terms), self.num_groups), np.float64)
        for row, term in enumerate(self.cost_terms):
            for g in term.input_layout if side == "input" else term.output_layout:
                matrix[row, g] += 1
        return matrix

    def cost(self, widths, resource):
        """Exact METHOD.md §2 resource of the network with these group widths (Python int)."""
        check_resource(resource)
        total = 0
        for term in self.cost_terms:
            c_in = self.layout_width(term.input_layout, widths)
            c_out = self.layout_width(term.output_layout, widths)
            coefficient = term.coefficient(resource)
            total += coefficient * (c_in * c_out if term.kind == "conv" else c_out)
        return total

    def full_widths(self):
        return self.group_sizes.copy()

    def minimal_widths(self):
        """One channel in every prunable group (the smallest network rebuild can produce)."""
        return np.where(self.fixed, self.group_sizes, 1)

    def structure(self, widths):
        """{layer_name: width} for every conv/dense/depthwise layer (the structure JSON)."""
        return {
            name: self.layout_width(self.output_layouts[name], widths) for name in self.width_layers
        }

    def widths_from_structure(self, structure):
        """Group widths from a structure JSON; layers of one group must agree."""
        widths = self.full_widths()
        seen = {}
        for name, width in structure.items():
            if name not in self.width_layers:
                raise ValueError(
                    f"Expected structure keys among the model's conv/dense layers "
                    f"{sorted(self.width_layers)[:8]}... Received: {name!r}"
                )
            layout = self.output_layouts[name]
            if len(layout) != 1:
                continue  # separable/depthwise outputs of several groups: checked by the others
            group = layout[0]
            if group in seen and seen[group] != int(width):
                raise ValueError(
                    f"Layers tied in group {self.group_names[group]!r} need one width. Received: "
                    f"{name}={width} but another member has {seen[group]}"
                )
            seen[group] = int(width)
            if self.fixed[group] and int(width) != self.group_sizes[group]:
                raise ValueError(
                    f"Group {self.group_names[group]!r} ({self.fixed_reasons[group]}) has fixed "
                    f"width {self.group_sizes[group]}. Received: {name}={width}"
                )
            if int(width) < 1:
                raise ValueError(f"Expected widths >= 1. Received: {name}={width}")
            widths[group] = int(width)
        return widths

    def group_widths_by_name(self, widths):
        return {self.group_names[g]: int(widths[g]) for g in range(self.num_groups)}


def check_resource(resource):
    """Raises ValueError unless `resource` is one of `RESOURCES`."""
    if resource not in RESOURCES:
        raise ValueError(
            f"Expected resource (regularizer) in {RESOURCES}. Received: {resource!r}. Use "
            "'flops' for FLOPs per example or 'size' for the number of weights."
        )
