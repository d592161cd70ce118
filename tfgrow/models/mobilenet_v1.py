"""MobileNetV1 (Howard et al. 2017) for small inputs as a plain Keras functional model.

Stem conv3x3 (stride 1, not 2: 28x28 and 32x32 inputs) -> 13 depthwise-separable blocks
(depthwise 3x3-BN-ReLU, pointwise 1x1-BN-ReLU) at 64..1024 channels times `width_multiplier`,
striding at blocks 2, 4 and 6 (32 -> 16 -> 8 -> 4; 28 -> 14 -> 7 -> 4) -> global average pool ->
dropout -> dense logits. The depthwise convs pass channels through, so MorphNet ties each
pointwise conv's output group to the next depthwise conv (METHOD.md §2, depthwise case).
"""

import gin
import keras

from tfgrow.models.keras_resnet import BATCH_NORM_MOMENTUM, scaled

L = keras.layers
# (pointwise filters, depthwise stride) per block; ImageNet's first stride-2 block is dropped.
BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 1),
    (1024, 1),
)


def _bn_relu(x, name):
    x = L.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=1e-3, name=name + "_bn")(x)
    return L.ReLU(6.0, name=name + "_relu")(x)


@gin.configurable(module="tfgrow.models")
def mobilenet_v1(input_shape, num_classes, width_multiplier=1.0, dropout_rate=1e-3):
    """MobileNetV1 for 28x28 / 32x32 inputs as a stock Keras functional model.

    Args:
        input_shape: (H, W, C).
        num_classes: number of logits.
        width_multiplier: alpha, scales every layer's channels (32 stem, 64..1024).
        dropout_rate: dropout before the classifier.

    Returns:
        A `keras.Model` named "mobilenet_v1" that outputs logits.
    """
    if not width_multiplier > 0:
        raise ValueError(f"Expected width_multiplier > 0. Received: {width_multiplier}")
    inputs = keras.Input(input_shape, name="images")
    x = L.Conv2D(scaled(32, width_multiplier), 3, padding="same", use_bias=False, name="stem_conv")(
        inputs
    )
    x = _bn_relu(x, "stem")
    for index, (filters, strides) in enumerate(BLOCKS, start=1):
        name = f"block{index}"
        x = L.DepthwiseConv2D(
            3, strides=strides, padding="same", use_bias=False, name=name + "_depthwise"
        )(x)
        x = _bn_relu(x, name + "_depthwise")
        x = L.Conv2D(
            scaled(filters, width_multiplier), 1, use_bias=False, name=name + "_pointwise"
        )(x)
        x = _bn_relu(x, name + "_pointwise")
    x = L.GlobalAveragePooling2D(name="pool")(x)
    x = L.Dropout(dropout_rate, name="dropout")(x)
    outputs = L.Dense(num_classes, name="logits")(x)
    return keras.Model(inputs, outputs, name="mobilenet_v1")
