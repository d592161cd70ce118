"""ResNet-20/32/56 for CIFAR-sized inputs as a plain Keras functional model (stock layers).

Stem conv3x3 -> 3 stages of `(depth - 2) / 6` basic blocks (conv3x3-BN-ReLU-conv3x3-BN, plus the
shortcut, then ReLU) at 16/32/64 channels times `width_multiplier`; the first block of stages 2
and 3 strides by 2 with a 1x1 conv + BN projection shortcut (option B, as `resnet_cifar`) ->
global average pool -> dense logits. MorphNet analyses, regularises and rebuilds it
(`tfgrow.morphnet`); every add ties one stage's residual stream into one channel group. With
`keras_module=tf_keras` the same network is built in Keras 2, for tensorflow-model-optimization
(`tfgrow.baselines.magnitude_pruning`).
"""

import gin
import keras

L = keras.layers
STAGE_WIDTHS = (16, 32, 64)
BATCH_NORM_MOMENTUM = 0.9  # short runs: moving statistics settle within ~50 steps


def scaled(width, width_multiplier):
    """max(1, round(width * width_multiplier))."""
    return max(1, int(round(width * width_multiplier)))


def conv_bn(x, filters, kernel_size, strides, name, relu=True, layers=L):
    x = layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name + "_conv",
    )(x)
    x = layers.BatchNormalization(momentum=BATCH_NORM_MOMENTUM, epsilon=1e-5, name=name + "_bn")(x)
    return layers.ReLU(name=name + "_relu")(x) if relu else x


@gin.configurable(module="tfgrow.models")
def keras_resnet_cifar(input_shape, num_classes, width_multiplier=1.0, depth=20, keras_module=None):
    """CIFAR ResNet (He et al. 2016) as a stock Keras functional model.

    Args:
        input_shape: (H, W, C), e.g. (28, 28, 1) or (32, 32, 3).
        num_classes: number of logits.
        width_multiplier: scales the 16/32/64 stage widths.
        depth: 6n + 2 (20, 32, 44, 56, 110).
        keras_module: the Keras package to build with: None for Keras 3 (`keras`), or the
            `tf_keras` module (Keras 2; layer names and weights are the same).

    Returns:
        A `keras.Model` named "resnet{depth}" that outputs logits.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"Expected depth = 6n + 2 (20, 32, 56, ...). Received: depth={depth}")
    if not width_multiplier > 0:
        raise ValueError(f"Expected width_multiplier > 0. Received: {width_multiplier}")
    api = keras_module or keras
    layers = api.layers
    blocks_per_stage = (depth - 2) // 6
    inputs = api.Input(input_shape, name="images")
    x = conv_bn(inputs, scaled(STAGE_WIDTHS[0], width_multiplier), 3, 1, "stem", layers=layers)
    for stage, width in enumerate(STAGE_WIDTHS, start=1):
        filters = scaled(width, width_multiplier)
        for block in range(1, blocks_per_stage + 1):
            name = f"stage{stage}_block{block}"
            strides = 2 if stage > 1 and block == 1 else 1
            shortcut = x
            if strides != 1:
                shortcut = conv_bn(
                    x, filters, 1, strides, name + "_shortcut", relu=False, layers=layers
                )
            y = conv_bn(x, filters, 3, strides, name + "_1", layers=layers)
            y = conv_bn(y, filters, 3, 1, name + "_2", relu=False, layers=layers)
            x = layers.Add(name=name + "_add")([shortcut, y])
            x = layers.ReLU(name=name + "_out")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    return api.Model(inputs, outputs, name=f"resnet{depth}")
