"""Residual blocks found from the graph, declared plain blocks validated (METHOD.md §1.1)."""

import keras
import pytest

from tests.fixtures import graphs
from tfgrow.graph.blocks import find_blocks
from tfgrow.models import keras_resnet_cifar

L = keras.layers


def test_resnet20_has_nine_blocks_and_gates_the_six_stride_one_identity_ones():
    blocks = find_blocks(keras_resnet_cifar((12, 12, 3), 5))
    assert len(blocks) == 9
    gated = [block.name for block in blocks if block.gated]
    # The first block of each stage always exists: stage 1's keeps its shape but starts the
    # stream (its input is the stem), stages 2 and 3 start with a strided projection.
    assert gated == [f"stage{s}_block{b}_add" for s in (1, 2, 3) for b in (2, 3)]
    projection = {block.name: block.shortcut_layers for block in blocks if block.shortcut_layers}
    assert projection == {
        f"stage{s}_block1_add": (f"stage{s}_block1_shortcut_conv", f"stage{s}_block1_shortcut_bn")
        for s in (2, 3)
    }
    block = blocks[1]
    assert block.input_layer == "stage1_block1_out" and block.branch_end == "stage1_block2_2_bn"
    assert block.branch_layers == tuple(
        f"stage1_block2_{part}" for part in ("1_conv", "1_bn", "1_relu", "2_conv", "2_bn")
    )


def test_keras_resnet50_has_sixteen_blocks_and_twelve_gated():
    model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
    blocks = find_blocks(model)
    assert len(blocks) == 16
    assert sum(block.gated for block in blocks) == 12  # 3 + 4 + 6 + 3 blocks, 4 projections
    assert all(bool(block.shortcut_layers) != block.gated for block in blocks)


def _plain_net():
    inputs = keras.Input((6, 6, 2), name="images")
    x = graphs.conv_bn(inputs, 4, 3, "stem")
    y = graphs.conv_bn(x, 4, 3, "p1")
    y = graphs.conv_bn(y, 4, 3, "p2")
    z = graphs.conv_bn(y, 8, 3, "wider")
    return keras.Model(inputs, graphs.head(z, 3), name="plain")


def test_a_declared_plain_block_is_gated_with_its_branch():
    (block,) = find_blocks(_plain_net(), [("stem_relu", "p2_relu")])
    assert block.kind == "plain" and block.gated
    assert block.branch_layers[0] == "p1" and block.branch_layers[-1] == "p2_relu"


@pytest.mark.parametrize(
    "pair, message",
    [
        (("stem_relu", "wider_relu"), "must keep its shape"),
        (("stem_relu", "missing"), "has no layer 'missing'"),
        (("p1_relu", "p2_relu", "x"), "Expected each plain block"),
    ],
)
def test_a_wrong_plain_block_stops_with_a_clear_error(pair, message):
    with pytest.raises(ValueError, match=message):
        find_blocks(_plain_net(), [pair])


def test_a_plain_block_whose_layers_feed_outside_it_is_refused():
    inputs = keras.Input((6, 6, 2), name="images")
    x = graphs.conv_bn(inputs, 4, 3, "stem")
    y = graphs.conv_bn(x, 4, 3, "p1")
    z = graphs.conv_bn(y, 4, 3, "p2")
    side = graphs.conv_bn(y, 4, 1, "side")  # reads p1_relu, inside the declared block
    model = keras.Model(inputs, graphs.head(L.Add(name="add")([z, side]), 3))
    with pytest.raises(ValueError, match=r"also feed \['side'\]"):
        find_blocks(model, [("stem_relu", "p2_relu")])
