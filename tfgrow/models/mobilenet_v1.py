"""MobileNetV1 (Howard et al. 2017) as a plain Keras functional model, for small or ImageNet inputs.

Stem conv3x3 -> 13 depthwise-separable blocks (depthwise 3x3-BN-ReLU6, pointwise 1x1-BN-ReLU6)
at 64..1024 channels times `width_multiplier` -> global average pool -> dropout -> dense logits.
Small inputs (default): the stem and block 12 keep stride 1, blocks 2, 4 and 6 stride by 2
(32 -> 16 -> 8 -> 4; 28 -> 14 -> 7 -> 4). `imagenet_strides=True`: the paper's network, stem and
block 12 stride by 2 too (224 -> 7); 4.23M parameters at 1000 classes, as
`keras.applications.MobileNet(weights=None)`. The depthwise convs pass channels through, so the
channel analysis ties each pointwise conv's output group to the next depthwise conv (METHOD.md §2).
"""

import gin
import keras

from tfgrow.models.keras_resnet import BATCH_NORM_MOMENTUM, check_width_multiplier, scaled

L = keras.layers
# (pointwise filters, depthwise stride) per block for small inputs; ImageNet strides block 12 too.
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
IMAGENET_EXTRA_STRIDE_BLOCK = 12


def _bn_relu(x, name):
    x = L.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=1e-3, name=name + "_bn")(x)
    return L.ReLU(6.0, name=name + "_relu")(x)


@gin.configurable(module="tfgrow.models")
def mobilenet_v1(
    input_shape, num_classes, width_multiplier=1.0, dropout_rate=1e-3, imagenet_strides=False
):
    """MobileNetV1 as a stock Keras functional model.

    Args:
        input_shape: (H, W, C); any size.
        num_classes: number of logits.
        width_multiplier: alpha, scales every layer's channels (32 stem, 64..1024).
        dropout_rate: dropout before the classifier.
        imagenet_strides: False: output stride 8 for 28x28 / 32x32 inputs; True: output stride
            32 (the stem and block 12 stride by 2), the paper's ImageNet network.

    Returns:
        A `keras.Model` named "mobilenet_v1" that outputs logits.
    """
    check_width_multiplier(width_multiplier)
    inputs = keras.Input(input_shape, name="images")
    x = L.Conv2D(
        scaled(32, width_multiplier),
        3,
        strides=2 if imagenet_strides else 1,
        padding="same",
        use_bias=False,
        name="stem_conv",
    )(inputs)
    x = _bn_relu(x, "stem")
    for index, (filters, strides) in enumerate(BLOCKS, start=1):
        if imagenet_strides and index == IMAGENET_EXTRA_STRIDE_BLOCK:
            strides = 2
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
