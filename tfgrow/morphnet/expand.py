"""Expand: the largest uniform width multiplier that meets a resource target (METHOD.md §2).

`F(ceil(ω · O'))` is a non-decreasing step function of ω: it only changes at ω = k / O'_g. The
search evaluates the exact cost (after rounding) at those breakpoints and bisects over them, so
the returned ω meets the target and any larger ω does not. Fixed groups (inputs, logits) keep
their width.
"""

import math

import numpy as np


def scaled_widths(graph, widths, multiplier):
    """ceil(multiplier * widths) in prunable groups (at least 1); fixed groups unchanged."""
    widths = np.asarray(widths, np.int64)
    scaled = np.array([max(1, math.ceil(multiplier * int(w) - 1e-9)) for w in widths], np.int64)
    return np.where(graph.fixed, graph.group_sizes, scaled)


def check_target(graph, target, resource, cost_fn=None):
    """Raises ValueError when even one channel per prunable group costs more than `target`."""
    cost_fn = cost_fn or (lambda widths: graph.cost(widths, resource))
    minimum = cost_fn(graph.minimal_widths())
    if target < minimum:
        raise ValueError(
            f"Expected a target of at least {minimum} {resource} (one channel in every "
            f"prunable group). Received: target={target}. Raise tfgrow.MorphNet.target_fraction "
            "(MorphNet) or tfgrow.Budget.target (baselines)."
        )


def expand(graph, widths, target, resource, cost_fn=None):
    """The largest ω with cost(ceil(ω · widths)) <= target.

    Args:
        graph: the seed's `ChannelGraph`.
        widths: learned widths O' per group (e.g. the alive counts after shrinking).
        target: ζ, in the resource's units (FLOPs per example or weights).
        resource: "flops" or "size" (names the units in messages).
        cost_fn: widths -> exact cost; None for `graph.cost(widths, resource)`. The baselines
            pass params with biases and BN (`tfgrow.baselines.sizing`).

    Returns:
        (multiplier, expanded widths, exact cost of the expanded widths).

    Raises:
        ValueError: when even one channel per prunable group costs more than `target`.
    """
    widths = np.asarray(widths, np.int64)
    cost_fn = cost_fn or (lambda candidate: graph.cost(candidate, resource))
    check_target(graph, target, resource, cost_fn)
    prunable = [int(w) for w, fixed in zip(widths, graph.fixed) if not fixed]
    if not prunable:
        raise ValueError("The model has no prunable channel group; nothing to expand.")

    def cost(multiplier):
        return cost_fn(scaled_widths(graph, widths, multiplier))

    upper = 1.0
    while cost(upper) <= target:
        upper *= 2.0
        if upper > 1e6:
            raise ValueError(f"Target {target} is not reached by any multiplier up to 1e6.")
    # Breakpoints k / O'_g up to `upper`; cost is constant on each (previous, breakpoint].
    candidates = sorted(
        {k / width for width in set(prunable) for k in range(1, math.ceil(upper * width) + 1)}
    )
    low, high = 0, len(candidates) - 1  # cost(candidates[0]) is the minimum, <= target
    while low < high:
        middle = (low + high + 1) // 2
        if cost(candidates[middle]) <= target:
            low = middle
        else:
            high = middle - 1
    multiplier = candidates[low]
    expanded = scaled_widths(graph, widths, multiplier)
    return multiplier, expanded, cost_fn(expanded)
