"""Model builders.

Plain Keras builders, `(input_shape, num_classes, width_multiplier=1.0, ...) -> keras.Model` of
stock layers (the paper's zoo; MorphNet and width-multiplier runs use them as they are):
`vgg16_bn`, `keras_resnet_cifar`, `wide_resnet`, `resnet50`, `mobilenet_v1`, `keras_application`
(`keras.applications` models, `weights=None`), and AutoGrow's seeds `autogrow_basic3resnet`,
`autogrow_plain3net`, `autogrow_bottleneck4resnet`, `autogrow_plain4net` (with
`plain_blocks(model)`, their plain-block declarations); `lstm_language_model`, a word-level
stacked-LSTM language model built for a fixed `batch_size` (stateful LSTMs). Growing configs
grow them through `tfgrow.grown_model` (`tfgrow.grow` of the builder's model).
"""

# The zoo's strided 1x1 shortcuts on narrow inputs reach oneDNN#6035 in stock Keras training
# too (`model.fit`, the baselines): importing the builders installs the Conv2D gradient guard.
import tfgrow.conv_ops  # noqa: F401
from tfgrow.models.autogrow import (
    autogrow_basic3resnet,
    autogrow_bottleneck4resnet,
    autogrow_plain3net,
    autogrow_plain4net,
    plain_blocks,
)
from tfgrow.models.bottleneck_resnet import resnet50
from tfgrow.models.keras_applications import keras_application
from tfgrow.models.keras_resnet import keras_resnet_cifar
from tfgrow.models.lstm_lm import lstm_language_model
from tfgrow.models.mobilenet_v1 import mobilenet_v1
from tfgrow.models.vgg_bn import vgg16_bn
from tfgrow.models.wide_resnet import wide_resnet

__all__ = [
    "autogrow_basic3resnet",
    "autogrow_bottleneck4resnet",
    "autogrow_plain3net",
    "autogrow_plain4net",
    "keras_application",
    "keras_resnet_cifar",
    "lstm_language_model",
    "mobilenet_v1",
    "plain_blocks",
    "resnet50",
    "vgg16_bn",
    "wide_resnet",
]
