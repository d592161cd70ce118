"""CIFAR-style 3-stage ResNets: ResNet-20/32/56, and AutoGrow's Basic3ResNet and Plain3Net seeds.

Stem conv3x3 -> 3 stages of basic blocks (the first block of stages 2 and 3 strides by 2 with a
1x1 projection shortcut) -> global average pool -> dense. All tensors added into one stage's
residual stream share one channel group `stage{i}` (METHOD.md §1.1); each block's first conv has
its own group `stage{i}_block{j}`.

- `resnet_cifar(depth=20)`: channel growing on a fixed depth (He et al. 2016, option B shortcuts).
- `basic3resnet(max_blocks_per_stage)`: joint channel and layer growing; every block but the first
  of a stage carries a layer mask that starts off (AutoGrow's 3-stage Basic family).
- `plain3net(max_blocks_per_stage)`: the same without shortcuts (`m F(x) + (1 - m) x`).
"""

import gin

from tfgrow.layers.blocks import GrowableBlock
from tfgrow.layers.conv import GrowableConv2D, GrowableDense
from tfgrow.layers.pooling import Pool2D
from tfgrow.masks import MaskGroup
from tfgrow.models.keras_resnet import stage_depths
from tfgrow.models.network import GrowingNetwork

DEFAULT_WIDTHS = (16, 32, 64)


def _three_stage_network(
    input_shape,
    num_classes,
    blocks_per_stage,
    widths,
    residual,
    gated,
    growing,
    seed_channels,
    name,
):
    if len(widths) != 3:
        raise ValueError(f"Expected 3 stage widths. Received: widths={widths}")
    depths = stage_depths(blocks_per_stage, len(widths))
    groups = []

    def group(group_name, size):
        groups.append(MaskGroup(size, num_on=min(seed_channels, size), name=group_name))
        return group_name

    stream = group("stage1", widths[0])
    layers = [GrowableConv2D(widths[0], 3, output_group=stream, name="stem")]
    for stage, (width, num_blocks) in enumerate(zip(widths, depths), start=1):
        for block in range(1, num_blocks + 1):
            first = block == 1
            changes_shape = first and stage > 1
            output_stream = group(f"stage{stage}", width) if changes_shape else stream
            block_name = f"stage{stage}_block{block}"
            layers.append(
                GrowableBlock(
                    width,
                    input_group=stream,
                    inner_group=group(block_name, width),
                    output_group=output_stream,
                    strides=2 if changes_shape else 1,
                    residual=residual,
                    projection=residual and changes_shape,
                    gated=gated and not first,
                    name=block_name,
                )
            )
            stream = output_stream
    layers.append(Pool2D("global_average", name="pool"))
    layers.append(
        GrowableDense(
            num_classes,
            input_group=stream,
            use_batch_norm=False,
            use_bias=True,
            activation="linear",
            name="logits",
        )
    )
    return GrowingNetwork(layers, groups, input_shape, growing=growing, name=name)


@gin.configurable(module="tfgrow.models")
def resnet_cifar(
    input_shape, num_classes, depth=20, widths=DEFAULT_WIDTHS, growing=True, seed_channels=1
):
    """ResNet-20/32/44/56/110 for 32x32 (or any size) images, channels growable.

    Args:
        input_shape: (H, W, C).
        num_classes: number of classes.
        depth: 6n + 2.
        widths: maximal widths of the three stages.
        growing: False for the plain full network.
        seed_channels: channels per group that start on (METHOD.md §1.5: 1).
    """
    if (depth - 2) % 6 != 0:
        raise ValueError(f"Expected depth = 6n + 2 (20, 32, 44, 56, 110). Received: depth={depth}")
    return _three_stage_network(
        input_shape,
        num_classes,
        (depth - 2) // 6,
        tuple(widths),
        residual=True,
        gated=False,
        growing=growing,
        seed_channels=seed_channels,
        name=f"resnet{depth}",
    )


def _autogrow_seed(residual, name):
    """A builder of AutoGrow's 3-stage seeds: every block but the first of a stage is gated."""

    def build(
        input_shape,
        num_classes,
        max_blocks_per_stage=6,
        widths=DEFAULT_WIDTHS,
        growing=True,
        seed_channels=1,
    ):
        return _three_stage_network(
            input_shape,
            num_classes,
            max_blocks_per_stage,
            tuple(widths),
            residual=residual,
            gated=True,
            growing=growing,
            seed_channels=seed_channels,
            name=name,
        )

    build.__name__ = name
    build.__doc__ = (
        f"AutoGrow's {name} seed (layers and channels grown): one block per stage on, up to "
        "`max_blocks_per_stage`; " + ("basic residual blocks." if residual else "no shortcuts.")
    )
    return gin.configurable(name, module="tfgrow.models")(build)


basic3resnet = _autogrow_seed(residual=True, name="basic3resnet")
plain3net = _autogrow_seed(residual=False, name="plain3net")
