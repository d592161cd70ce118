"""Host-side choice of static per-group widths (capacities) for XLA and stable-shape runs.

DESIGN.md, "Compact execution": under XLA every shape is fixed when the step is compiled, so each
channel group runs at a capacity from a small ladder (`masks.capacity_ladder`), padded slots carry
mask 0, and between epochs the host re-chooses capacities from what it observed. A step that
draws more structures than a group's capacity keeps the most probable ones and is counted.
Each distinct set of capacities is one trace of the training step, so a run compiles at most
once per epoch for training (and once for evaluation) plus a constant.
"""

import numpy as np


class CapacityPlanner:
    """Chooses capacities from the sampling distribution and the counts observed.

    Args:
        model: a growing `GrowingModel`.
        temperature: the run's `Temperature`.
        sigmas: the capacity holds the mean plus this many standard deviations of a step's
            count at the current probabilities.
        headroom: multiplies the need before rounding up to a ladder rung (room to grow within
            an epoch).
    """

    def __init__(self, model, temperature, sigmas=4.0, headroom=1.0):
        if sigmas < 0 or headroom < 1.0:
            raise ValueError(
                "Expected capacity sigmas >= 0 and headroom >= 1. Received: "
                f"sigmas={sigmas}, headroom={headroom}"
            )
        self.model = model
        self.temperature = temperature
        self.sigmas = float(sigmas)
        self.headroom = float(headroom)
        self.names = list(model.channel_groups)
        self.observed = np.zeros(len(self.names))
        self.overflow_steps = 0
        self.dropped = 0
        self.history = []

    def plan(self, epoch):
        """Capacities for the coming epoch (group -> Python int); resets the observed counts."""
        bounds = self.model.sampling_bounds(self.temperature, float(epoch), self.sigmas)
        needs = {
            name: max(bounds[name], self.observed[i]) * self.headroom
            for i, name in enumerate(self.names)
        }
        self.observed[:] = 0
        capacities = self.model.capacities_for(needs)
        self.history.append(capacities)
        return capacities

    def observe(self, results):
        """Folds one step's "sampled" counts and "dropped" total into the record."""
        self.observed = np.maximum(self.observed, np.asarray(results["sampled"]))
        dropped = int(round(float(results["dropped"])))
        self.dropped += dropped
        self.overflow_steps += int(dropped > 0)

    def state(self):
        """The record a resumed run needs: observed counts, overflow steps, dropped total."""
        return np.concatenate([self.observed, [self.overflow_steps, self.dropped]])

    def load_state(self, state):
        state = np.asarray(state, np.float64)
        self.observed = state[: len(self.names)].copy()
        self.overflow_steps = int(state[-2])
        self.dropped = int(state[-1])

    def eval_capacities(self):
        """Capacities holding H(s) exactly (no structure of H(s) is dropped)."""
        widths, _ = self.model.architecture()
        return self.model.capacities_for(widths)
