"""tfgrow: grow compact networks during training, and MorphNet, on TensorFlow 2 / Keras 3."""

from tfgrow.layers.conv_ops import guard_stock_conv2d_gradient

# oneDNN#6035 corrupts the heap in the filter gradient of strided 1x1 convolutions on fewer than
# 16 channels; stock Keras Conv2D layers (MorphNet's models) are guarded through TF's gradient
# registry, growing layers through conv2d_same (tfgrow/layers/conv_ops.py).
guard_stock_conv2d_gradient()
