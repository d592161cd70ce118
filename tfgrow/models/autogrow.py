"""AutoGrow's seed families (Wen et al. 2020) as plain Keras functional models of maximal depth.

Layer growing starts from one block per stage and grows up to `max_blocks_per_stage` (METHOD.md
§1.1, §1.5); these builders return the maximal network, every stage at full depth:

- `autogrow_basic3resnet`: 3 CIFAR stages (16/32/64) of basic residual blocks, i.e. ResNet-(6n+2)
  for n = `max_blocks_per_stage` (`keras_resnet_cifar`'s network).
- `autogrow_plain3net`: the same without shortcuts.
- `autogrow_bottleneck4resnet`: 4 ImageNet stages (64..512, x4 out) of bottleneck residual blocks
  after the ImageNet stem (`resnet50`'s network with n blocks per stage).
- `autogrow_plain4net`: 4 ImageNet stages of basic blocks without shortcuts (`block=
  "bottleneck"` removes the shortcuts of Bottleneck4ResNet instead).

Residual blocks are found from the graph (an `Add` of x and a branch computed from x); plain
blocks (`m F(x) + (1 - m) x`) cannot be, so `plain_blocks(model)` declares them as
`(input_layer_name, output_layer_name)` pairs: every block of a stage but the first, from the
previous block's `_out` to its own. The first block of a stage (strided or projecting) has no
layer mask (METHOD.md §1.1).
"""

import re

import gin
import keras

from tfgrow.models.bottleneck_resnet import bottleneck_block, imagenet_network
from tfgrow.models.keras_resnet import basic_block, cifar_basic_network

BLOCK_OUTPUT = re.compile(r"stage(\d+)_block(\d+)_out")
FOUR_STAGE_BLOCKS = {"basic": basic_block, "bottleneck": bottleneck_block}


def _network(name, num_stages, block, residual, input_shape, num_classes, width_multiplier, blocks):
    if int(blocks) != blocks or blocks < 1:
        raise ValueError(f"Expected max_blocks_per_stage to be an int >= 1. Received: {blocks}")
    if num_stages == 3:
        return cifar_basic_network(
            input_shape, num_classes, width_multiplier, blocks, residual, name
        )
    return imagenet_network(
        input_shape, num_classes, width_multiplier, blocks, FOUR_STAGE_BLOCKS[block], residual, name
    )


def _seed(name, num_stages, block, residual, description):
    """A gin-configurable builder `autogrow_{name}` of one seed family."""

    def build(input_shape, num_classes, width_multiplier=1.0, max_blocks_per_stage=6):
        return _network(
            name,
            num_stages,
            block,
            residual,
            input_shape,
            num_classes,
            width_multiplier,
            max_blocks_per_stage,
        )

    build.__name__ = build.__qualname__ = f"autogrow_{name}"
    build.__doc__ = f"""AutoGrow's {description}, at maximal depth.

    Args:
        input_shape: (H, W, C); any size.
        num_classes: number of logits.
        width_multiplier: scales every width.
        max_blocks_per_stage: blocks of every stage (the depth layer growing may reach).

    Returns:
        A `keras.Model` named "{name}" that outputs logits.
    """
    return gin.configurable(build.__name__, module="tfgrow.models")(build)


autogrow_basic3resnet = _seed(
    "basic3resnet", 3, "basic", True, "Basic3ResNet: 3 stages (16/32/64) of basic residual blocks"
)
autogrow_plain3net = _seed(
    "plain3net", 3, "basic", False, "Plain3Net: Basic3ResNet without shortcuts"
)
autogrow_bottleneck4resnet = _seed(
    "bottleneck4resnet",
    4,
    "bottleneck",
    True,
    "Bottleneck4ResNet: ImageNet stem, 4 stages (64..512, x4 out) of bottleneck residual blocks",
)


@gin.configurable(module="tfgrow.models")
def autogrow_plain4net(
    input_shape, num_classes, width_multiplier=1.0, max_blocks_per_stage=6, block="basic"
):
    """AutoGrow's Plain4Net: ImageNet stem, 4 stages of blocks without shortcuts, at maximal depth.

    Args:
        input_shape: (H, W, C), e.g. (224, 224, 3); any size.
        num_classes: number of logits.
        width_multiplier: scales every width.
        max_blocks_per_stage: blocks of every stage; `plain_blocks` declares all but the first.
        block: "basic" (two conv3x3, as Plain3Net's blocks) or "bottleneck".

    Returns:
        A `keras.Model` named "plain4net" that outputs logits.
    """
    if block not in FOUR_STAGE_BLOCKS:
        raise ValueError(f"Expected block in {sorted(FOUR_STAGE_BLOCKS)}. Received: {block!r}")
    return _network(
        "plain4net",
        4,
        block,
        False,
        input_shape,
        num_classes,
        width_multiplier,
        max_blocks_per_stage,
    )


@gin.configurable(module="tfgrow.models")
def plain_blocks(model):
    """The plain blocks of a Plain3Net/Plain4Net as `(input_layer_name, output_layer_name)` pairs.

    Block b > 1 of stage s runs from `stage{s}_block{b-1}_out` to `stage{s}_block{b}_out`; both
    tensors have the same shape. The first block of a stage is left out (it has no layer mask).
    Gin configs name it `@tfgrow.models.plain_blocks` (the function, called on the built model).

    Args:
        model: a model built by `autogrow_plain3net` or `autogrow_plain4net` (or any model that
            follows their naming).

    Returns:
        A list of name pairs, stage by stage, block by block.

    Raises:
        ValueError: if the model has no `stage{s}_block{b}_out` layers, or its blocks have
            shortcuts (residual blocks are found from the graph, not declared).
    """
    outputs = {}
    for layer in model.layers:
        match = BLOCK_OUTPUT.fullmatch(layer.name)
        if match:
            outputs[int(match[1]), int(match[2])] = layer
        if isinstance(layer, keras.layers.Add) and layer.name.startswith("stage"):
            raise ValueError(
                f"Expected a plain net (blocks without shortcuts). Received: {model.name!r} with "
                f"residual add {layer.name!r}; residual blocks are found from the graph"
            )
    if not outputs:
        raise ValueError(
            f"Expected layers named stage{{s}}_block{{b}}_out (autogrow_plain3net, "
            f"autogrow_plain4net). Received: {model.name!r} has none"
        )
    pairs = []
    for stage, index in sorted(outputs):
        if index == 1:
            continue
        first, last = outputs.get((stage, index - 1)), outputs[stage, index]
        if first is None or first.output.shape != last.output.shape:
            raise ValueError(
                f"Expected block {index - 1} of stage {stage} before block {index}, with the same "
                f"output shape. Received: {first and first.output.shape} vs {last.output.shape}"
            )
        pairs.append((first.name, last.name))
    return pairs
