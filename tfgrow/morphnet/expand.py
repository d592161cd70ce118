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


def check_target(graph, target, resource):
    """Raises ValueError when even one channel per prunable group costs more than `target`."""
    minimum = graph.cost(graph.minimal_widths(), resource)
    if target < minimum:
        raise ValueError(
            f"Expected a target of at least {minimum} {resource} (one channel in every "
            f"prunable group). Received: target={target}. Raise tfgrow.MorphNet.target_fraction."
        )


def expand(graph, widths, target, resource):
    """The largest ω with cost(ceil(ω · widths)) <= target.

    Args:
        graph: the seed's `ChannelGraph`.
        widths: learned widths O' per group (e.g. the alive counts after shrinking).
        target: ζ, in the resource's units (FLOPs per example or weights).
        resource: "flops" or "size".

    Returns:
        (multiplier, expanded widths, exact cost of the expanded widths).

    Raises:
        ValueError: when even one channel per prunable group costs more than `target`.
    """
    widths = np.asarray(widths, np.int64)
    check_target(graph, target, resource)
    prunable = [int(w) for w, fixed in zip(widths, graph.fixed) if not fixed]
    if not prunable:
        raise ValueError("The model has no prunable channel group; nothing to expand.")

    def cost(multiplier):
        return graph.cost(scaled_widths(graph, widths, multiplier), resource)

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
    return multiplier, expanded, graph.cost(expanded, resource)
