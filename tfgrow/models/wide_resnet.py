"""Wide ResNets (Zagoruyko & Komodakis 2016), pre-activation, as plain Keras functional models.

WRN-d-k: stem conv3x3 (16) -> 3 stages of `(d - 4) / 6` pre-activation basic blocks at 16k, 32k
and 64k channels (BN-ReLU-conv3x3, dropout, BN-ReLU-conv3x3, plus the shortcut; no ReLU after the
add) -> BN-ReLU -> global average pool -> dense logits. The first block of each stage changes the
width (stage 1: 16 -> 16k) or strides by 2; as in the authors' code its BN-ReLU is shared by the
branch and a 1x1 projection shortcut. WRN-28-10: 36.5M parameters at 10 classes.

Every conv output is scaled by a BN gamma before the next conv (the next unit's pre-activation,
or the final BN), so every channel group can be pruned. Block `stage{s}_block{b}` owns `_1_bn`,
`_1_relu`, `_1_conv`, `_dropout`, `_2_bn`, `_2_relu`, `_2_conv`, (`_shortcut_conv`,) `_add`.
"""

import gin
import keras

from tfgrow.models.keras_resnet import (
    batch_norm_relu,
    check_width_multiplier,
    classifier,
    conv,
    scaled,
    stage_depths,
)

L = keras.layers
STAGE_WIDTHS = (16, 32, 64)


def wide_block(x, filters, strides, dropout_rate, name):
    """One pre-activation basic block; a projection shortcut when the shape changes."""
    activated = batch_norm_relu(x, name + "_1")
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = conv(filters, 1, strides, name + "_shortcut_conv")(activated)
    y = conv(filters, 3, strides, name + "_1_conv")(activated)
    y = L.Dropout(dropout_rate, name=name + "_dropout")(y)
    y = batch_norm_relu(y, name + "_2")
    y = conv(filters, 3, 1, name + "_2_conv")(y)
    return L.Add(name=name + "_add")([shortcut, y])


@gin.configurable(module="tfgrow.models")
def wide_resnet(
    input_shape, num_classes, width_multiplier=1.0, depth=28, widen_factor=10, dropout_rate=0.0
):
    """WRN-`depth`-`widen_factor` as a stock Keras functional model.

    Args:
        input_shape: (H, W, C); any size.
        num_classes: number of logits.
        width_multiplier: scales every width (the stem's 16 and the stages' 16k/32k/64k).
        depth: 6n + 4 (16, 22, 28, 40).
        widen_factor: k.
        dropout_rate: dropout between the two convs of a block (the authors use 0.3 on CIFAR).

    Returns:
        A `keras.Model` named "wrn{depth}_{widen_factor}" that outputs logits.
    """
    if depth < 10 or (depth - 4) % 6:
        raise ValueError(f"Expected depth = 6n + 4 (16, 22, 28, 40). Received: depth={depth}")
    if widen_factor < 1:
        raise ValueError(f"Expected widen_factor >= 1. Received: widen_factor={widen_factor}")
    check_width_multiplier(width_multiplier)
    blocks_per_stage = stage_depths((depth - 4) // 6, len(STAGE_WIDTHS))
    inputs = keras.Input(input_shape, name="images")
    x = conv(scaled(16, width_multiplier), 3, 1, "stem_conv")(inputs)
    for stage, width in enumerate(STAGE_WIDTHS, start=1):
        filters = scaled(width * widen_factor, width_multiplier)
        for index in range(1, blocks_per_stage[stage - 1] + 1):
            strides = 2 if stage > 1 and index == 1 else 1
            x = wide_block(x, filters, strides, dropout_rate, f"stage{stage}_block{index}")
    x = batch_norm_relu(x, "final")
    return keras.Model(inputs, classifier(x, num_classes), name=f"wrn{depth}_{widen_factor}")
