"""Budget-aware penalty weights (METHOD.md §1.3, Eq. 4).

`lambda_c = lambda_c_base * (current - target)` and `lambda_l = lambda_l_base * (current -
target)`, where `current` is the cost of the deterministic architecture H(s) as a fraction of the
full network. Under budget lambda < 0 and the penalty grows the network; over budget it prunes.
With `target=None` the weights stay at their base values (the fixed-lambda mode of Eq. 3).
"""

import dataclasses
import difflib
import math
import numbers

import gin

from tfgrow import cost as cost_lib

METRICS = ("params", "flops", "latency")


@gin.configurable(module="tfgrow")
@dataclasses.dataclass(frozen=True)
class Budget:
    """How the penalty weights follow the resource budget.

    Args:
        target: target cost as a fraction of the full network, in (0, 1]; None for fixed lambda.
        metric: "params" (default), "flops", or "latency": the predicted training-step time
            of H(s) on the run's device, from a table of measured layer times built at the
            start of the run (`tfgrow.latency.LatencyTable`).
        lambda_channel_base: lambda_c_base (0.5 when only channels grow, 1.0 with layers).
        lambda_layer_base: lambda_l_base (0.1 when layers grow too).
        update_steps: refresh lambda every this many steps. Default 1 (inside the compiled
            step, so it costs nothing): with 50, as the paper's "periodically" suggests, the
            budget fraction of ResNet-20 on Fashion-MNIST swung between 0.001 and 1.0, since all
            off structures start at the same logit and cross zero together.
    """

    target: float | None = 0.35
    metric: str = "params"
    lambda_channel_base: float = 0.5
    lambda_layer_base: float = 0.1
    update_steps: int = 1

    def __post_init__(self):
        for name in ("target", "lambda_channel_base", "lambda_layer_base", "update_steps"):
            value = getattr(self, name)
            is_number = isinstance(value, numbers.Real) and not isinstance(value, bool)
            if not (is_number and math.isfinite(value)) and not (
                name == "target" and value is None
            ):
                raise ValueError(
                    f"Expected tfgrow.Budget.{name} to be a finite number"
                    f"{' or None' if name == 'target' else ''}. Received: {name}={value!r} "
                    f"({type(value).__name__}). Fix: write it without quotes, e.g. "
                    f"tfgrow.Budget.{name}={self.__dataclass_fields__[name].default}."
                )
        if self.target is not None and not 0.0 < float(self.target) <= 1.0:
            raise ValueError(
                "Expected a budget target as a fraction of the full network in (0, 1]. "
                f"Received: target={self.target}. Use e.g. target=0.35 for 35% of the full "
                "network's cost, or target=None for a fixed lambda."
            )
        if self.metric not in METRICS:
            close = difflib.get_close_matches(str(self.metric), METRICS, n=1, cutoff=0.5)
            raise ValueError(
                f"Expected tfgrow.Budget.metric in {METRICS}. Received: metric={self.metric!r}."
                + (f" Did you mean {close[0]!r}?" if close else "")
            )
        if self.target is not None and min(self.lambda_channel_base, self.lambda_layer_base) < 0:
            raise ValueError(
                "Expected tfgrow.Budget.lambda_channel_base and lambda_layer_base >= 0 (their "
                "sign comes from the budget gap). Received: lambda_channel_base="
                f"{self.lambda_channel_base}, lambda_layer_base={self.lambda_layer_base}"
            )
        if int(self.update_steps) != self.update_steps or self.update_steps < 1:
            raise ValueError(
                f"Expected tfgrow.Budget.update_steps to be an integer >= 1. Received: "
                f"update_steps={self.update_steps}"
            )

    def lambdas(self, current_fraction):
        """(lambda_c, lambda_l) for the current cost fraction."""
        if self.target is None:
            return self.lambda_channel_base, self.lambda_layer_base
        gap = current_fraction - float(self.target)
        return self.lambda_channel_base * gap, self.lambda_layer_base * gap

    def current_fraction(self, layer_costs, widths, blocks, latency=None):
        """Cost fraction of an architecture (Python numbers or tensors) in this metric.

        `latency`: the network's `LatencyTable` (metric "latency" only).
        """
        return cost_lib.fraction(layer_costs, widths, blocks, self.metric, latency)
