"""MorphNet (METHOD.md §2) on Keras functional models: channel groups from the layer graph,
FLOPs/size gamma regularisers, expand by width multiplier, rebuild with sliced weights.

The expand step is `tfgrow.morphnet.expand.expand` (not re-exported: it shares its module's name).
"""

from tfgrow.morphnet.graph import ChannelGraph, UnsupportedLayerError, analyze
from tfgrow.morphnet.rebuild import build_at_widths, rebuild_with_weights, structure_keep
from tfgrow.morphnet.regularizers import GammaRegularizer, keep_top
from tfgrow.morphnet.run import MorphNet

__all__ = [
    "ChannelGraph",
    "GammaRegularizer",
    "MorphNet",
    "UnsupportedLayerError",
    "analyze",
    "build_at_widths",
    "keep_top",
    "rebuild_with_weights",
    "structure_keep",
]
