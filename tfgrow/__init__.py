"""tfgrow: grow compact networks during training (METHOD.md), and MorphNet, on TensorFlow 2 and
Keras 3.

`tfgrow.grow(model)` turns a Keras functional model into a growing one (`tfgrow.growing`).
"""

from tfgrow.layers.conv_ops import guard_stock_conv2d_gradient

# oneDNN#6035 corrupts the heap in the filter gradient of strided 1x1 convolutions on fewer than
# 16 channels; stock Conv2D ops (MorphNet's models, the graph engine's executors) are guarded
# through TF's gradient registry, growing layers through conv2d_same (tfgrow/layers/conv_ops.py).
guard_stock_conv2d_gradient()

from tfgrow.growing import GrowingModel, grow  # noqa: E402  (after the guard)

__all__ = ["GrowingModel", "grow"]
