"""CIFAR ResNets as plain Keras functional models, and the blocks the other ResNet builders share.

`keras_resnet_cifar(depth)`: ResNet-20/32/44/56/110 (He et al. 2016, CIFAR variant). Stem
conv3x3 -> 3 stages of `(depth - 2) / 6` basic blocks (conv3x3-BN-ReLU-conv3x3-BN, plus the
shortcut, then ReLU) at 16/32/64 channels times `width_multiplier`; the first block of stages 2
and 3 strides by 2 with a 1x1 conv + BN projection shortcut (option B) ->
global average pool -> dense logits. Every add ties one stage's residual stream into one channel
group (METHOD.md §1.1): ResNet-20 has 3 stream groups and 9 inner groups.

Layer names follow `keras.applications`: block `stage{s}_block{b}` owns `_1_conv`, `_1_bn`,
`_1_relu`, `_2_conv`, `_2_bn`, (`_shortcut_conv`, `_shortcut_bn`,) `_add` and `_out`, its
output. Plain blocks (no shortcut, AutoGrow's PlainNets) end in the ReLU `_out` too, so a block
always runs from the previous block's `_out` to its own.
"""

import gin
import keras

L = keras.layers
STAGE_WIDTHS = (16, 32, 64)
BATCH_NORM_MOMENTUM = 0.9  # short runs: moving statistics settle within ~50 steps
BATCH_NORM_EPSILON = 1e-5


def scaled(width, width_multiplier):
    """max(1, round(width * width_multiplier))."""
    return max(1, int(round(width * width_multiplier)))


def check_width_multiplier(width_multiplier):
    if not width_multiplier > 0:
        raise ValueError(f"Expected width_multiplier > 0. Received: {width_multiplier}")


def conv(filters, kernel_size, strides, name, layers=L):
    """A Conv2D layer without bias, He-initialised, "same" padding."""
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        name=name,
    )


def batch_norm_relu(x, name, relu=True, layers=L):
    """BN named `{name}_bn`, then (optionally) ReLU named `{name}_relu`."""
    x = layers.BatchNormalization(
        momentum=BATCH_NORM_MOMENTUM, epsilon=BATCH_NORM_EPSILON, name=name + "_bn"
    )(x)
    return layers.ReLU(name=name + "_relu")(x) if relu else x


def conv_bn(x, filters, kernel_size, strides, name, relu=True, layers=L):
    """Conv -> BN -> optional ReLU, named `{name}_conv|_bn|_relu`."""
    x = conv(filters, kernel_size, strides, name + "_conv", layers)(x)
    return batch_norm_relu(x, name, relu, layers)


def merge_branch(x, branch, output_channels, strides, name, residual, layers=L):
    """The end of a block: `relu(shortcut(x) + branch)` (residual) or `relu(branch)` (plain).

    The shortcut is the identity when the block keeps its shape, else a 1x1 conv + BN with the
    block's stride (projection, option B). The final ReLU is named `{name}_out`.
    """
    if residual:
        shortcut = x
        if strides != 1 or x.shape[-1] != output_channels:
            shortcut = conv_bn(
                x, output_channels, 1, strides, name + "_shortcut", relu=False, layers=layers
            )
        branch = layers.Add(name=name + "_add")([shortcut, branch])
    return layers.ReLU(name=name + "_out")(branch)


def basic_block(x, filters, strides, name, residual=True, layers=L):
    """conv3x3-BN-ReLU-conv3x3-BN, then the shortcut (residual) and ReLU; `filters` out."""
    y = conv_bn(x, filters, 3, strides, name + "_1", layers=layers)
    y = conv_bn(y, filters, 3, 1, name + "_2", relu=False, layers=layers)
    return merge_branch(x, y, filters, strides, name, residual, layers)


@gin.configurable(module="tfgrow.models")
def stage_depths(blocks_per_stage, num_stages, cap=None):
    """The block count of every stage, at most `cap` each.

    Every builder of stages reads its depth through here (the CIFAR and ImageNet ResNets,
    WRN and AutoGrow's seeds), so one binding caps them all: `configs/tiny.gin` sets
    `tfgrow.models.stage_depths.cap = 3`, and CI's tiny runs of deep configs trace 3 blocks per
    stage (a 16-block Basic3ResNet traces 5x fewer layers; ResNet-20's 3 are unchanged).

    Args:
        blocks_per_stage: one count per stage, or one int for all stages.
        num_stages: the number of stages.
        cap: None (no cap) or the most blocks any stage gets.

    Returns:
        A tuple of `num_stages` block counts.
    """
    if isinstance(blocks_per_stage, int):
        blocks_per_stage = (blocks_per_stage,) * num_stages
    blocks_per_stage = tuple(blocks_per_stage)
    if len(blocks_per_stage) != num_stages or min(blocks_per_stage) < 1:
        raise ValueError(
            f"Expected one block count >= 1 per stage ({num_stages} stages). Received: "
            f"blocks_per_stage={blocks_per_stage}"
        )
    if cap is None:
        return blocks_per_stage
    if int(cap) != cap or cap < 1:
        raise ValueError(f"Expected tfgrow.models.stage_depths.cap >= 1 or None. Received: {cap}")
    return tuple(min(count, int(cap)) for count in blocks_per_stage)


def stages(x, widths, blocks_per_stage, block, residual, **block_kwargs):
    """Stages of `block`s; the first block of every stage but the first strides by 2.

    Args:
        x: the stem's output.
        widths: the (scaled) width argument of `block` per stage.
        blocks_per_stage: one count per stage, or one int for all stages (`stage_depths`).
        block: `basic_block` or another function `(x, width, strides, name, residual) -> y`.
        residual: shortcuts (ResNets) or none (plain nets).
        **block_kwargs: passed on to every `block` call (e.g. `layers=tf_keras.layers`).

    Returns:
        The last block's output.
    """
    blocks_per_stage = stage_depths(blocks_per_stage, len(widths))
    for stage, (width, num_blocks) in enumerate(zip(widths, blocks_per_stage), start=1):
        for index in range(1, num_blocks + 1):
            strides = 2 if stage > 1 and index == 1 else 1
            x = block(x, width, strides, f"stage{stage}_block{index}", residual, **block_kwargs)
    return x


def classifier(x, num_classes, layers=L):
    """Global average pool ("pool") -> dense logits ("logits")."""
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    return layers.Dense(num_classes, name="logits")(x)


def cifar_basic_network(
    input_shape, num_classes, width_multiplier, blocks_per_stage, residual, name, api=keras
):
    """Stem conv3x3 (16) -> 3 stages of basic blocks at 16/32/64 -> pool -> logits."""
    check_width_multiplier(width_multiplier)
    inputs = api.Input(input_shape, name="images")
    x = conv_bn(inputs, scaled(STAGE_WIDTHS[0], width_multiplier), 3, 1, "stem", layers=api.layers)
    widths = [scaled(width, width_multiplier) for width in STAGE_WIDTHS]
    x = stages(x, widths, blocks_per_stage, basic_block, residual, layers=api.layers)
    return api.Model(inputs, classifier(x, num_classes, api.layers), name=name)


@gin.configurable(module="tfgrow.models")
def keras_resnet_cifar(input_shape, num_classes, width_multiplier=1.0, depth=20, keras_module=None):
    """CIFAR ResNet (He et al. 2016) as a stock Keras functional model.

    Args:
        input_shape: (H, W, C), e.g. (28, 28, 1) or (32, 32, 3); any size.
        num_classes: number of logits.
        width_multiplier: scales the 16/32/64 stage widths.
        depth: 6n + 2 (20, 32, 44, 56, 110): 0.27M, 0.46M, 0.66M, 0.85M, 1.7M parameters.
        keras_module: the Keras package to build with: None for Keras 3 (`keras`), or the
            `tf_keras` module (Keras 2; same layer names and weights), for
            tensorflow-model-optimization (`tfgrow.baselines.magnitude_pruning`).

    Returns:
        A `keras.Model` named "resnet{depth}" that outputs logits.
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(f"Expected depth = 6n + 2 (20, 32, 56, ...). Received: depth={depth}")
    blocks_per_stage = (depth - 2) // 6
    return cifar_basic_network(
        input_shape,
        num_classes,
        width_multiplier,
        blocks_per_stage,
        True,
        f"resnet{depth}",
        api=keras_module or keras,
    )
