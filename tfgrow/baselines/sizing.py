"""A uniform width multiplier sized to the run's budget (`tfgrow.Budget`: target and metric).

The search is MorphNet's (`tfgrow.morphnet.expand`: the largest ω with cost(ceil(ω O)) <= target,
exact after rounding); only the cost differs: "params" counts what `summary.json` counts
(kernels, biases, BN gamma and beta: `params_at_widths`), "flops" the FLOPs per example.
"""

from typing import NamedTuple

import keras
import numpy as np

from tfgrow.graph import analysis as graph_lib
from tfgrow.morphnet import expand as expand_lib

L = keras.layers


def params_at_widths(model, graph, widths):
    """Params of `model` rebuilt with group `widths` (= count_model of the rebuilt model).

    Kernels as the channel analysis' "size" cost, plus one bias per output channel of a layer
    with a bias and BN gamma and beta per channel they scale.
    """
    total = graph.cost(widths, "size")
    for layer in model.layers:
        if isinstance(layer, L.BatchNormalization):
            per_channel = int(layer.center) + int(layer.scale)
            total += per_channel * graph.layout_width(graph.input_layouts[layer.name], widths)
        elif getattr(layer, "bias", None) is not None:
            layouts = (
                graph.input_layouts
                if isinstance(layer, L.DepthwiseConv2D)
                else graph.output_layouts
            )
            total += graph.layout_width(layouts[layer.name], widths)
    return int(total)


def budget_cost(model, graph, metric):
    """(widths -> cost in the budget's metric, the analysis resource naming its units)."""
    if metric == "params":
        return (lambda widths: params_at_widths(model, graph, widths)), "params"
    if metric == "flops":
        return (lambda widths: graph.cost(widths, "flops")), "flops"
    raise ValueError(
        f"Expected budget metric 'params' or 'flops' for a baseline sized to the budget "
        f"(metric 'latency' prices growing runs only). Received: {metric!r}"
    )


class UniformSizing(NamedTuple):
    """A uniform network sized to a budget (`uniform_widths`).

    Attributes:
        graph: the full model's `ChannelGraph`.
        multiplier: the width multiplier ω.
        widths: ceil(ω O) per group (fixed groups at full width).
        cost, full_cost: the budget metric of `widths` and of the full network.
        budget: the `tfgrow.Budget`.
    """

    graph: object
    multiplier: float
    widths: np.ndarray
    cost: int
    full_cost: int
    budget: object

    def summary_fields(self):
        """The summary keys every uniformly sized baseline reports."""
        return {
            "budget_target": self.budget.target,
            "budget_metric": self.budget.metric,
            "width_multiplier": self.multiplier,
            "budget_fraction": self.cost / self.full_cost,
        }


def uniform_widths(model, budget):
    """The largest uniform width multiplier whose network meets `budget` (a `tfgrow.Budget`).

    Args:
        model: the full stock Keras functional model.
        budget: target fraction and metric ("params" or "flops").

    Returns:
        A `UniformSizing`.
    """
    if budget.target is None:
        raise ValueError(
            "Expected a budget target for a uniform network (tfgrow.Budget.target, e.g. 0.3). "
            "Received: target=None"
        )
    graph = graph_lib.analyze(model)
    cost_fn, units = budget_cost(model, graph, budget.metric)
    full_cost = cost_fn(graph.full_widths())
    target = float(budget.target) * full_cost
    multiplier, widths, cost = expand_lib.expand(
        graph, graph.full_widths(), target, units, cost_fn=cost_fn
    )
    return UniformSizing(graph, multiplier, np.asarray(widths, np.int64), cost, full_cost, budget)
