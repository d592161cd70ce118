"""Growable model builders: `(input_shape, num_classes, growing=...) -> GrowingNetwork`."""

from tfgrow.models.network import GrowingNetwork
from tfgrow.models.resnet_cifar import basic3resnet, plain3net, resnet_cifar
from tfgrow.models.vgg import vgg16

__all__ = ["GrowingNetwork", "basic3resnet", "plain3net", "resnet_cifar", "vgg16"]
