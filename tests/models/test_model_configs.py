"""configs/models/*.gin of the plain builders: each one include away from a model of its family."""

import os
import re

import gin
import pytest

from tests.fixtures.processes import REPO
from tfgrow import config, models
from tfgrow.graph import analyze

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
    "basic3resnet": lambda: models.basic3resnet((8, 8, 1), 3, 4, widths=(2, 2, 2)),
}


@pytest.mark.parametrize("name", sorted(STAGE_BUILDERS))
def test_tiny_gin_caps_every_stage_builder_at_three_blocks_per_stage(name):
    uncapped = STAGE_BUILDERS[name]()
    gin.parse_config_files_and_bindings([os.path.join(REPO, "configs", "tiny.gin")], [])
    capped = STAGE_BUILDERS[name]()
    if name == "basic3resnet":  # the hand-written engine: blocks are its GrowableBlocks
        assert len(uncapped.all_block_names()) == 12 and len(capped.all_block_names()) == 9
        return
    counts = block_counts(uncapped)
    assert max(counts.values()) >= 4
    assert block_counts(capped) == {stage: min(count, 3) for stage, count in counts.items()}
    analyze(capped)
