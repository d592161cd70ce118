"""The Keras functional graph as the one description of a network (DESIGN.md, "The channel graph").

- `analysis`: channel groups, layouts, fixed groups and cost terms read from the layer graph
  (its result: `channel_graph.ChannelGraph`; LSTM, GRU and Embedding layers: `recurrent`).
- `counting`: params and FLOPs counted from a built Keras model itself.
- `slicing`: the same graph rebuilt at new group widths, with sliced weights.
"""

from tfgrow.graph.analysis import ChannelGraph, UnsupportedLayerError, analyze
from tfgrow.graph.counting import count_model
from tfgrow.graph.slicing import build_at_widths, rebuild_with_weights

__all__ = [
    "ChannelGraph",
    "UnsupportedLayerError",
    "analyze",
    "build_at_widths",
    "count_model",
    "rebuild_with_weights",
]
