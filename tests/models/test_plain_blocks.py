"""Plain-block declarations of AutoGrow's Plain3Net/Plain4Net: valid pairs, the right count."""

import keras
import pytest

from tfgrow import models


@pytest.mark.parametrize(
    "build, num_stages, block_layers",
    [
        (lambda n: models.autogrow_plain3net((28, 28, 1), 10, 0.25, n), 3, 6),
        (lambda n: models.autogrow_plain4net((32, 32, 3), 10, 0.125, n), 4, 6),
        (lambda n: models.autogrow_plain4net((32, 32, 3), 10, 0.125, n, "bottleneck"), 4, 9),
    ],
    ids=["plain3net", "plain4net", "plain4net_bottleneck"],
)
@pytest.mark.parametrize("max_blocks_per_stage", [1, 3])
def test_every_block_but_the_first_of_a_stage_is_declared_with_one_shape(
    build, num_stages, block_layers, max_blocks_per_stage
):
    model = build(max_blocks_per_stage)
    pairs = models.plain_blocks(model)
    assert len(pairs) == num_stages * (max_blocks_per_stage - 1)
    for stage in range(1, num_stages + 1):
        in_stage = [pair for pair in pairs if pair[1].startswith(f"stage{stage}_")]
        assert len(in_stage) == max_blocks_per_stage - 1
        assert all(not name.startswith(f"stage{stage}_block1_") for _, name in in_stage)
    for first, last in pairs:
        start, end = model.get_layer(first).output, model.get_layer(last).output
        assert start.shape == end.shape
        # The pair spans exactly one block: conv-BN-ReLU x 2 (x 3 for bottlenecks).
        block = keras.Model(start, end)
        assert len(block.layers) == 1 + block_layers
        assert all(layer.name.startswith(last[: -len("out")]) for layer in block.layers[1:])


def test_residual_nets_and_foreign_models_are_refused():
    with pytest.raises(ValueError, match="residual add 'stage1_block1_add'"):
        models.plain_blocks(models.autogrow_basic3resnet((28, 28, 1), 10, 0.25, 2))
    with pytest.raises(ValueError, match="stage\\{s\\}_block\\{b\\}_out"):
        models.plain_blocks(models.vgg16_bn((28, 28, 1), 10, width_multiplier=0.125))
