"""Grow any Keras functional model (METHOD.md §1): `tfgrow.grow(model) -> GrowingModel`.

- `structures`: contexts, counts, penalties and counters of a network's mask groups;
- `layouts`: active sets of channel layouts (several groups on one axis);
- `executors`: one compact executor per stock Keras layer type;
- `plan`: the graph's nodes in order, gated blocks as units;
- `recurrent`: LSTM, GRU and Embedding executors; `reset_states(model)` zeroes the states of
  stateful recurrent layers (call it at every epoch start and before evaluation);
- `costs`: `tfgrow.cost.LayerCost` entries from the graph's cost terms;
- `update`: the per-step growth update (sampling, penalty, counters, training FLOPs, lambda)
  shared by the launcher's trainer and `model.fit`;
- `model`: `GrowingModel`, and `grow`, the entry point.
"""

from tfgrow.growing.grow import grow, grown_model
from tfgrow.growing.model import GrowingModel
from tfgrow.growing.recurrent import reset_states

__all__ = ["GrowingModel", "grow", "grown_model", "reset_states"]
