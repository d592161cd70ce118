"""The random-sampling baseline (METHOD.md §1.9): learned sampling replaced by a fixed coin.

Run by the growing trainer (`tfgrow.train.train` with method "random"): every structure (channel
or block) is drawn with the same probability p (the budget target) at every step, with mask value
1, and the logits receive no update. The final architecture is drawn once, before training, from
a seeded Bernoulli(p) per structure (at least one channel per group) and written into the logits
(+3 kept, -3 dropped), so H(s), evaluation, checkpoints and export all see it.
"""

import numpy as np

KEPT_LOGIT = 3.0  # METHOD.md §1.5: s_on = +3, s_off = -3


def prepare(network, probability, seed):
    """Makes `network` sample with `probability` and fixes its final architecture.

    Args:
        network: a growing `GrowingNetwork`.
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
