"""The random-sampling baseline (METHOD.md §1.9): learned sampling replaced by a fixed coin.

Run by the growing trainer (`tfgrow.train.train` with method "random"): every structure (channel
or block) is drawn with the same probability p (the budget target) at every step, with mask value
1, and the logits receive no update. The final architecture is drawn once, before training, from
a seeded Bernoulli(p) per structure (at least one channel per group) and written into the logits
(+3 kept, -3 dropped), so H(s), evaluation, checkpoints and export all see it.

With p = the target (METHOD.md §1.9) a conv's params scale with p^2, so the final network costs
about target^2 of the full one (ResNet-20 at 0.3: 9% of the params). `random_probability` with
`match="cost"` instead picks the p whose expected architecture costs the target, the baseline at
equal cost.
"""

import gin
import numpy as np

from tfgrow import cost as cost_lib

KEPT_LOGIT = 3.0  # METHOD.md §1.5: s_on = +3, s_off = -3
MATCHES = ("structures", "cost")


@gin.configurable(module="tfgrow", denylist=["network", "target", "metric"])
def random_probability(network, target, metric, match="structures"):
    """The probability p with which the random baseline draws every structure.

    Args:
        network: the growing network (its `layer_costs` price an architecture).
        target: the budget's target fraction (`tfgrow.Budget.target`).
        metric: the budget's metric, "params" or "flops" (`tfgrow.Budget.metric`).
        match: "structures": p = target, each structure kept with the target fraction (METHOD.md
            §1.9). "cost": the p at which the expected architecture (every group at p of its
            width, every block on with probability p) costs `target` of the full network in
            `metric`, found by bisection (ResNet-20, params: p = 0.55 for a target of 0.3).

    Returns:
        p in (0, 1].
    """
    if match not in MATCHES:
        raise ValueError(
            f"Expected tfgrow.random_probability.match in {MATCHES}. Received: {match!r}. Fix: "
            f"'structures' draws with p = the target, 'cost' with p sized to the target's cost."
        )
    if match == "structures" or target is None:
        return target
    layers = network.layer_costs
    sizes = cost_lib.full_widths(layers)

    def expected_fraction(p):
        blocks = {name: p for name in network.gate_groups}
        return cost_lib.fraction(layers, {g: p * n for g, n in sizes.items()}, blocks, metric)

    low, high = 0.0, 1.0  # the expected cost rises with p: 0 at 0, the full cost at 1
    for _ in range(50):
        middle = (low + high) / 2
        low, high = (middle, high) if expected_fraction(middle) < target else (low, middle)
    return high


def prepare(network, probability, seed):
    """Makes `network` sample with `probability` and fixes its final architecture.

    Args:
        network: a growing `GrowingModel`.
        probability: p in (0, 1], the probability of every structure.
        seed: seeds the draw of the final architecture.

    Returns:
        group name -> bool vector of the structures the final architecture keeps.
    """
    if not 0.0 < float(probability) <= 1.0:
        raise ValueError(
            f"Expected the random baseline's probability in (0, 1] (tfgrow.Budget.target). "
            f"Received: {probability}"
        )
    rng = np.random.default_rng([int(seed), 1])
    kept = {}
    for name, group in network.group_variables().items():
        keep = rng.random(group.size) < probability
        if group.kind == "channel" and not keep.any():
            keep[rng.integers(group.size)] = True  # no group is ever empty (METHOD.md §1.1)
        group.logits.assign(np.where(keep, KEPT_LOGIT, -KEPT_LOGIT).astype(np.float32))
        kept[name] = keep
    network.fixed_probability = float(probability)
    return kept
