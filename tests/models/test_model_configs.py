"""configs/models/*.gin: each one include away from a model of its family.

The plain builders' configs build stock Keras models (MorphNet, width multiplier); the growing
configs (resnet20, vgg16, basic3resnet, plain3net) grow them (`tfgrow.grown_model`).
"""

import os
import re

import gin
import pytest

from tests.fixtures.processes import REPO
from tfgrow import config, models
from tfgrow.graph import analyze, count_model
from tfgrow.growing import GrowingModel

# config -> (builder, name of the model it builds)
CONFIGS = {
    "vgg16_bn": ("vgg16_bn", "vgg16_bn"),
    "keras_resnet56": ("keras_resnet_cifar", "resnet56"),
    "wrn28_10": ("wide_resnet", "wrn28_10"),
    "resnet50": ("resnet50", "resnet50"),
    "mobilenet_v1_imagenet": ("mobilenet_v1", "mobilenet_v1"),
    "autogrow_basic3resnet": ("autogrow_basic3resnet", "basic3resnet"),
    "autogrow_plain3net": ("autogrow_plain3net", "plain3net"),
    "autogrow_bottleneck4resnet": ("autogrow_bottleneck4resnet", "bottleneck4resnet"),
    "autogrow_plain4net": ("autogrow_plain4net", "plain4net"),
}


@pytest.fixture(autouse=True)
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_a_model_config_builds_its_architecture_through_tfgrow_train_model_fn(name):
    builder, model_name = CONFIGS[name]
    # A model file alone is not a run: the parser asks for a dataset too.
    bindings = [f"tfgrow.models.{builder}.width_multiplier = 0.0625", "tfgrow.train.dataset = 'x'"]
    if name.startswith("autogrow_"):
        bindings.append("MAX_BLOCKS_PER_STAGE = 2")  # keeps the test fast; configs set 8-10
    config.parse([f"configs/models/{name}.gin"], bindings, search_path=REPO)
    model_fn = gin.query_parameter("tfgrow.train.model_fn").scoped_configurable_fn
    model = model_fn((32, 32, 3), 10)
    assert model.name == model_name
    analyze(model)
    if name == "wrn28_10":
        assert model.get_layer("stage3_block4_dropout").rate == 0.3
    if name == "mobilenet_v1_imagenet":
        assert model.get_layer("block13_pointwise").output.shape[1:3] == (1, 1)  # stride 32
    if name.startswith("autogrow_"):
        assert model.get_layer("stage3_block2_out") and "stage3_block3_out" not in {
            layer.name for layer in model.layers
        }


# growing config -> (its plain builder, the source model's name, kind of its gated blocks)
GROWN_CONFIGS = {
    "resnet20": ("keras_resnet_cifar", "resnet20", None),
    "vgg16": ("vgg16_bn", "vgg16_bn", None),
    "basic3resnet": ("autogrow_basic3resnet", "basic3resnet", "residual"),
    "plain3net": ("autogrow_plain3net", "plain3net", "plain"),
}


def _model_fn(config_name, bindings=()):
    bindings = ["tfgrow.train.dataset = 'x'", *bindings]
    config.parse([f"configs/models/{config_name}.gin"], bindings, search_path=REPO)
    return gin.query_parameter("tfgrow.train.model_fn").scoped_configurable_fn


@pytest.mark.parametrize("name", sorted(GROWN_CONFIGS))
def test_a_growing_model_config_grows_its_plain_builder_on_the_graph_engine(name):
    builder, model_name, gated_kind = GROWN_CONFIGS[name]
    bindings = [f"tfgrow.models.{builder}.width_multiplier = 0.125", "MAX_BLOCKS_PER_STAGE = 2"]
    model_fn = _model_fn(name, bindings if gated_kind else bindings[:1])
    grown = model_fn((16, 16, 1), 10)
    assert isinstance(grown, GrowingModel) and grown.source.name == model_name
    # Layer growing: one gated block per stage at 2 blocks per stage, of the family's kind.
    gated = [block for block in grown.blocks if block.gated]
    assert len(gated) == (3 if gated_kind else 0)
    assert {block.kind for block in gated} <= {gated_kind}
    full = model_fn((16, 16, 1), 10, growing=False)  # the "full" method: no sampling
    assert not full.growing and full.full_cost() == count_model(full.source)


def test_the_resnet20_config_builds_the_main_jobs_full_network():
    full = _model_fn("resnet20")((28, 28, 1), 10, growing=False)
    # ResNet-20 on Fashion-MNIST: the full network of fashion_mnist_resnet20_full.gin (its
    # header's 272,186 params and 62.0M FLOPs per example).
    assert full.full_cost() == (272186, 62043904)


def block_counts(model):
    """Stage -> its number of blocks, from the `stage{s}_block{b}_out` / `_add` layer names."""
    blocks = set()
    for layer in model.layers:
        match = re.fullmatch(r"(stage\d+)_(block\d+)_(out|add)", layer.name)
        if match:
            blocks.add(match.group(1, 2))
    return {stage: sum(s == stage for s, _ in blocks) for stage, _ in blocks}


# configs/tiny.gin keeps CI's tiny runs of deep configs short by capping every stage builder's
# depth through one binding; each builder below builds 4-6 blocks in some stage without it.
STAGE_BUILDERS = {
    "keras_resnet_cifar": lambda: models.keras_resnet_cifar((8, 8, 1), 3, 0.25, depth=26),
    "wide_resnet": lambda: models.wide_resnet((8, 8, 1), 3, 0.25, depth=28, widen_factor=1),
    "resnet50": lambda: models.resnet50((32, 32, 1), 3, 0.0625),
    "autogrow_bottleneck4resnet": lambda: models.autogrow_bottleneck4resnet(
        (32, 32, 1), 3, 0.0625, max_blocks_per_stage=4
    ),
    "autogrow_plain4net": lambda: models.autogrow_plain4net(
        (32, 32, 1), 3, 0.0625, max_blocks_per_stage=4
    ),
    "autogrow_basic3resnet": lambda: models.autogrow_basic3resnet(
        (8, 8, 1), 3, 0.125, max_blocks_per_stage=4
    ),
    "autogrow_plain3net": lambda: models.autogrow_plain3net(
        (8, 8, 1), 3, 0.125, max_blocks_per_stage=4
    ),
}


@pytest.mark.parametrize("name", sorted(STAGE_BUILDERS))
def test_tiny_gin_caps_every_stage_builder_at_three_blocks_per_stage(name):
    uncapped = STAGE_BUILDERS[name]()
    gin.parse_config_files_and_bindings([os.path.join(REPO, "configs", "tiny.gin")], [])
    capped = STAGE_BUILDERS[name]()
    counts = block_counts(uncapped)
    assert max(counts.values()) >= 4
    assert block_counts(capped) == {stage: min(count, 3) for stage, count in counts.items()}
    analyze(capped)
