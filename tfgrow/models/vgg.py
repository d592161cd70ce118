"""VGG-16 with batch norm, CIFAR variant (Li et al. 2017): 13 convs, dense 512, dense classes.

The paper's VGG-16 on CIFAR-10 has 14.99M parameters: the 13 conv+BN layers of VGG-16, a
512-unit dense layer with BN and ReLU, and the classifier. Max pooling uses "same" padding so any
input size works (28x28 pools to 14, 7, 4, 2, 1). Every conv and the hidden dense layer own a
channel group, `conv{i}` and `fc1`.
"""

import gin

from tfgrow.layers.conv import GrowableConv2D, GrowableDense
from tfgrow.layers.pooling import Pool2D
from tfgrow.masks import MaskGroup
from tfgrow.models.network import GrowingNetwork
from tfgrow.models.vgg_bn import VGG16_PLAN


@gin.configurable(module="tfgrow.models")
def vgg16(
    input_shape, num_classes, plan=VGG16_PLAN, hidden_units=512, growing=True, seed_channels=1
):
    """VGG-16-BN with growable filters and hidden units.

    Args:
        input_shape: (H, W, C).
        num_classes: number of classes.
        plan: conv widths with "M" for 2x2 max pooling.
        hidden_units: width of the hidden dense layer (0 to omit it).
        growing: False for the plain full network.
        seed_channels: structures per group that start on (METHOD.md §1.5: 1).
    """
    groups, layers = [], []
    previous = None
    conv_index = 0
    for entry in plan:
        if entry == "M":
            layers.append(Pool2D("max", name=f"pool{len(layers)}"))
            continue
        conv_index += 1
        name = f"conv{conv_index}"
        groups.append(MaskGroup(entry, num_on=min(seed_channels, entry), name=name))
        layers.append(GrowableConv2D(entry, 3, input_group=previous, output_group=name, name=name))
        previous = name
    layers.append(Pool2D("global_average", name="flatten"))
    if hidden_units:
        groups.append(MaskGroup(hidden_units, num_on=min(seed_channels, hidden_units), name="fc1"))
        layers.append(
            GrowableDense(hidden_units, input_group=previous, output_group="fc1", name="fc1")
        )
        previous = "fc1"
    layers.append(
        GrowableDense(
            num_classes,
            input_group=previous,
            use_batch_norm=False,
            use_bias=True,
            activation="linear",
            name="logits",
        )
    )
    return GrowingNetwork(layers, groups, input_shape, growing=growing, name="vgg16")
