"""configs/models/*.gin of the plain builders: each one include away from a model of its family."""

import gin
import pytest

from tests.fixtures.processes import REPO
from tfgrow import config
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
