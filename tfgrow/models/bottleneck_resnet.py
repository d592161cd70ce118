"""ImageNet ResNets with bottleneck blocks (ResNet-50) as plain Keras functional models.

Stem conv7x7/2-BN-ReLU and 3x3/2 max pooling -> 4 stages of bottleneck blocks (conv1x1-BN-ReLU,
conv3x3-BN-ReLU, conv1x1-BN with 4x the width, plus the shortcut, then ReLU) at 64/128/256/512
(x4 out) channels times `width_multiplier` -> global average pool -> dense logits. The first
block of each stage projects with a 1x1 conv + BN shortcut; stages 2-4 stride by 2 in the 3x3 conv
(ResNet v1.5, as torchvision and AutoGrow). "same" padding everywhere, so any input size works
(224 -> 7, 32 -> 1, 28 -> 1). ResNet-50: 25.56M parameters at 1000 classes, which is
`keras.applications.ResNet50(weights=None)` without its conv biases (each followed by a BN, they
add 79,680 redundant parameters there).
"""

import gin
import keras

from tfgrow.models.keras_resnet import (
    check_width_multiplier,
    classifier,
    conv_bn,
    merge_branch,
    scaled,
    stages,
)

L = keras.layers
STAGE_WIDTHS = (64, 128, 256, 512)
EXPANSION = 4
RESNET50_BLOCKS = (3, 4, 6, 3)


def imagenet_stem(inputs, width_multiplier):
    """conv7x7/2 (64) -> BN -> ReLU -> max pool 3x3/2 ("stem_pool")."""
    x = conv_bn(inputs, scaled(64, width_multiplier), 7, 2, "stem")
    return L.MaxPooling2D(3, strides=2, padding="same", name="stem_pool")(x)


def bottleneck_block(x, filters, strides, name, residual=True):
    """conv1x1-BN-ReLU, conv3x3(stride)-BN-ReLU, conv1x1-BN (4 x `filters`), shortcut, ReLU."""
    y = conv_bn(x, filters, 1, 1, name + "_1")
    y = conv_bn(y, filters, 3, strides, name + "_2")
    y = conv_bn(y, filters * EXPANSION, 1, 1, name + "_3", relu=False)
    return merge_branch(x, y, filters * EXPANSION, strides, name, residual)


def imagenet_network(
    input_shape, num_classes, width_multiplier, blocks_per_stage, block, residual, name
):
    """ImageNet stem -> 4 stages of `block` at 64/128/256/512 -> pool -> logits."""
    check_width_multiplier(width_multiplier)
    inputs = keras.Input(input_shape, name="images")
    x = imagenet_stem(inputs, width_multiplier)
    widths = [scaled(width, width_multiplier) for width in STAGE_WIDTHS]
    x = stages(x, widths, blocks_per_stage, block, residual)
    return keras.Model(inputs, classifier(x, num_classes), name=name)


@gin.configurable(module="tfgrow.models")
def resnet50(input_shape, num_classes, width_multiplier=1.0):
    """ResNet-50 (He et al. 2016, v1.5 strides) as a stock Keras functional model.

    Args:
        input_shape: (H, W, C), e.g. (224, 224, 3); any size (small inputs end at 1x1).
        num_classes: number of logits.
        width_multiplier: scales every width (stem 64, stages 64..512 and their 4x outputs).

    Returns:
        A `keras.Model` named "resnet50" that outputs logits.
    """
    return imagenet_network(
        input_shape,
        num_classes,
        width_multiplier,
        RESNET50_BLOCKS,
        bottleneck_block,
        residual=True,
        name="resnet50",
    )
