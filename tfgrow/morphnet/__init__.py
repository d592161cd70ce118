"""MorphNet (METHOD.md §2) on Keras functional models: FLOPs/size gamma regularisers on the
channel groups of `tfgrow.graph`, expand by width multiplier, rebuild with sliced weights
(`tfgrow.graph.slicing`).

The expand step is `tfgrow.morphnet.expand.expand` (not re-exported: it shares its module's name).
"""

from tfgrow.morphnet.regularizers import GammaRegularizer, keep_top, structure_keep
from tfgrow.morphnet.run import MorphNet

__all__ = [
    "GammaRegularizer",
    "MorphNet",
    "keep_top",
    "structure_keep",
]
