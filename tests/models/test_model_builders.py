"""The paper's zoo as plain Keras builders: published sizes, graph analysis, counts, any input.

Big models (WRN-28-10, ResNet-50 at 224x224) are built once per module; everything else is built
at small widths and depths.
"""

import keras
import numpy as np
import pytest

from tfgrow import models
from tfgrow.graph import analyze, count_model

L = keras.layers


@pytest.fixture(scope="module")
def wrn28_10():
    return wide_resnet_28_10()


def wide_resnet_28_10():
    return models.wide_resnet((32, 32, 3), 10, depth=28, widen_factor=10)


@pytest.fixture(scope="module")
def resnet50_imagenet():
    return models.resnet50((224, 224, 3), 1000)


def trainable_count(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def layer_params(model, kinds):
    return sum(trainable_count(layer) for layer in model.layers if isinstance(layer, kinds))


def prunable_group_names(graph):
    return {graph.group_names[g] for g in range(graph.num_groups) if graph.prunable[g]}


def group_of(graph, layer_name):
    (group,) = graph.output_layouts[layer_name]
    return group


@pytest.mark.parametrize("depth, published_millions", [(20, 0.27), (32, 0.46), (56, 0.85)])
def test_cifar_resnets_have_the_published_sizes(depth, published_millions):
    model = models.keras_resnet_cifar((32, 32, 3), 10, depth=depth)
    # He et al. count option A (parameter-free shortcuts); ours are option B projections.
    projections = sum(
        trainable_count(layer) for layer in model.layers if "_shortcut_" in layer.name
    )
    assert projections == 16 * 32 + 2 * 32 + 32 * 64 + 2 * 64
    params, _ = count_model(model)
    assert round((params - projections) / 1e6, 2) == published_millions


def test_vgg16_bn_has_the_papers_15_million_parameters():
    params, _ = count_model(models.vgg16_bn((32, 32, 3), 10))
    assert round(params / 1e6, 2) == 14.99  # the paper's Table 1 (14.99M)


def test_wrn28_10_has_the_published_36_5_million_parameters(wrn28_10):
    params, _ = count_model(wrn28_10)
    assert round(params / 1e6, 1) == 36.5


def test_resnet50_is_keras_applications_resnet50_without_its_redundant_conv_biases(
    resnet50_imagenet,
):
    reference = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=1000)
    conv_biases = sum(
        int(layer.bias.shape[0])
        for layer in reference.layers
        if isinstance(layer, L.Conv2D) and layer.use_bias
    )
    params, flops = count_model(resnet50_imagenet)
    assert params == trainable_count(reference) - conv_biases
    assert round(params / 1e6, 1) == 25.6
    # ResNet v1.5 at 224x224: 4.1 GMACs.
    assert round(flops / 2e9, 1) == 4.1


def test_mobilenet_v1_at_imagenet_strides_is_keras_applications_mobilenet():
    model = models.mobilenet_v1((224, 224, 3), 1000, imagenet_strides=True)
    reference = keras.applications.MobileNet(weights=None, input_shape=(224, 224, 3))
    assert count_model(model) == count_model(reference)
    assert round(count_model(model)[0] / 1e6, 1) == 4.2
    assert model.get_layer("block13_pointwise").output.shape[1:3] == (7, 7)


SMALL_BUILDERS = {
    "resnet20": lambda shape: models.keras_resnet_cifar(shape, 10, width_multiplier=0.25),
    "vgg16_bn": lambda shape: models.vgg16_bn(shape, 10, width_multiplier=0.125),
    "wrn10_2": lambda shape: models.wide_resnet(shape, 10, depth=10, widen_factor=2),
    "resnet50": lambda shape: models.resnet50(shape, 10, width_multiplier=0.125),
    "mobilenet_v1": lambda shape: models.mobilenet_v1(shape, 10, width_multiplier=0.125),
    "mobilenet_v1_imagenet": lambda shape: models.mobilenet_v1(
        shape, 10, width_multiplier=0.125, imagenet_strides=True
    ),
    "basic3resnet": lambda shape: models.autogrow_basic3resnet(shape, 10, 0.25, 2),
    "plain3net": lambda shape: models.autogrow_plain3net(shape, 10, 0.25, 2),
    "bottleneck4resnet": lambda shape: models.autogrow_bottleneck4resnet(shape, 10, 0.125, 2),
    "plain4net": lambda shape: models.autogrow_plain4net(shape, 10, 0.125, 2),
}


@pytest.mark.parametrize("input_shape", [(28, 28, 1), (32, 32, 3), (64, 64, 3)])
@pytest.mark.parametrize("name", sorted(SMALL_BUILDERS))
def test_every_builder_takes_any_input_size_and_its_counts_equal_the_analysis(name, input_shape):
    model = SMALL_BUILDERS[name](input_shape)
    assert model.output.shape == (None, 10)
    graph = analyze(model)
    assert graph.fixed_groups == {"images": "model input", "logits": "model output"}
    params, flops = count_model(model)
    full = graph.full_widths()
    assert graph.cost(full, "flops") == flops
    # The analysis' size is the kernels; the counted params add biases and BN gamma/beta.
    extras = layer_params(model, L.BatchNormalization) + sum(
        int(layer.bias.shape[0]) for layer in model.layers if getattr(layer, "use_bias", False)
    )
    assert graph.cost(full, "size") == params - extras


def test_big_models_counts_equal_the_analysis(wrn28_10, resnet50_imagenet):
    for model in (wrn28_10, resnet50_imagenet):
        graph = analyze(model)
        assert graph.cost(graph.full_widths(), "flops") == count_model(model)[1]


def test_resnet20_ties_three_stage_streams_and_keeps_nine_inner_groups():
    graph = analyze(models.keras_resnet_cifar((32, 32, 3), 10))
    streams = {group_of(graph, f"stage{s}_block{b}_2_conv") for s in (1, 2, 3) for b in (1, 2, 3)}
    inner = {group_of(graph, f"stage{s}_block{b}_1_conv") for s in (1, 2, 3) for b in (1, 2, 3)}
    assert len(streams) == 3 and len(inner) == 9
    assert len(prunable_group_names(graph)) == 3 + 9


def test_wrn28_10_ties_each_stage_stream_to_its_projection(wrn28_10):
    graph = analyze(wrn28_10)
    for stage in (1, 2, 3):
        stream = {group_of(graph, f"stage{stage}_block{b}_2_conv") for b in (1, 2, 3, 4)}
        assert stream == {group_of(graph, f"stage{stage}_block1_shortcut_conv")}
    # stem (16, its own group: stage 1 projects 16 -> 160) + 3 streams + 12 inner convs.
    assert len(prunable_group_names(graph)) == 1 + 3 + 12
    assert graph.group_sizes[group_of(graph, "stage3_block4_2_conv")] == 640


def test_resnet50_has_four_streams_and_two_inner_groups_per_block(resnet50_imagenet):
    graph = analyze(resnet50_imagenet)
    blocks = [(s, b) for s, n in enumerate((3, 4, 6, 3), start=1) for b in range(1, n + 1)]
    streams = {group_of(graph, f"stage{s}_block{b}_3_conv") for s, b in blocks}
    assert len(streams) == 4
    assert len(prunable_group_names(graph)) == 1 + 4 + 2 * 16  # stem, streams, 1x1 and 3x3


@pytest.mark.parametrize(
    "builder, num_stages, convs_per_block, residual",
    [
        (models.autogrow_basic3resnet, 3, 2, True),
        (models.autogrow_plain3net, 3, 2, False),
        (models.autogrow_bottleneck4resnet, 4, 3, True),
        (models.autogrow_plain4net, 4, 2, False),
    ],
)
def test_autogrow_seeds_group_counts_follow_max_blocks_per_stage(
    builder, num_stages, convs_per_block, residual
):
    for max_blocks in (1, 3):
        graph = analyze(builder((32, 32, 3), 10, 0.125, max_blocks))
        blocks = num_stages * max_blocks
        if residual:  # one stream per stage; every conv but the block's last is inner
            expected = num_stages + (convs_per_block - 1) * blocks
            if num_stages == 4:
                expected += 1  # the ImageNet stem (64) feeds a projection (64 -> 256)
        else:
            expected = 1 + convs_per_block * blocks
        assert len(prunable_group_names(graph)) == expected


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: models.keras_resnet_cifar((32, 32, 3), 10, depth=21), "depth = 6n \\+ 2"),
        (lambda: models.wide_resnet((32, 32, 3), 10, depth=27), "depth = 6n \\+ 4"),
        (lambda: models.resnet50((32, 32, 3), 10, width_multiplier=0), "width_multiplier > 0"),
        (lambda: models.autogrow_plain3net((32, 32, 3), 10, max_blocks_per_stage=0), ">= 1"),
        (lambda: models.autogrow_plain4net((32, 32, 3), 10, block="wide"), "Received: 'wide'"),
    ],
    ids=["resnet_depth", "wrn_depth", "width_multiplier", "max_blocks", "plain4net_block"],
)
def test_bad_arguments_say_what_was_expected(call, message):
    with pytest.raises(ValueError, match=message):
        call()
