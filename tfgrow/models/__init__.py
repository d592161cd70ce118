"""Growable model builders: `(input_shape, num_classes, growing=...) -> GrowingNetwork`.

Plain Keras builders for MorphNet: `(input_shape, num_classes, width_multiplier=1.0) ->
keras.Model` (`keras_resnet_cifar`, `mobilenet_v1`).
"""

from tfgrow.models.keras_resnet import keras_resnet_cifar
from tfgrow.models.mobilenet_v1 import mobilenet_v1
from tfgrow.models.network import GrowingNetwork
from tfgrow.models.resnet_cifar import basic3resnet, plain3net, resnet_cifar
from tfgrow.models.vgg import vgg16

__all__ = [
    "GrowingNetwork",
    "basic3resnet",
    "keras_resnet_cifar",
    "mobilenet_v1",
    "plain3net",
    "resnet_cifar",
    "vgg16",
]
