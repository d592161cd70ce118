"""tfgrow: grow compact networks during training (METHOD.md), on TensorFlow 2 and Keras 3.

`tfgrow.grow(model)` turns a Keras functional model into a growing one (`tfgrow.growing`).
"""

from tfgrow.growing import GrowingModel, grow

__all__ = ["GrowingModel", "grow"]
