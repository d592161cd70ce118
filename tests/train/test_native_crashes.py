"""Training runs that crashed natively (oneDNN#6035) now finish: the `Conv2D` gradient guard of
`tfgrow/conv_ops.py` is installed by importing `tfgrow.models`, the growing executors or MorphNet's
phases.

Before the workaround, each of these died with a segmentation fault or a glibc abort
("corrupted size vs. prev_size") in nearly every run: the filter gradient of a strided 1x1
shortcut whose active input width is below 16 overflowed oneDNN's workspace. Each runs in a
subprocess, so a native crash fails the test instead of killing pytest; a run does several
steps, and the overflow hit within the first one or two in every crashing run observed.
"""

import os
import subprocess
import sys
import textwrap

import pytest

from tests.fixtures.processes import REPO

FIT_64 = """
import keras
import numpy as np
import tfgrow
from tfgrow.budget import Budget
from tfgrow.models import keras_resnet_cifar
from tfgrow.train.callback import GrowingCallback

rng = np.random.default_rng(0)
images = rng.normal(size=(24, 64, 64, 3)).astype("float32")
labels = rng.integers(0, 10, size=24).astype("int32")
model = tfgrow.grow(keras_resnet_cifar((64, 64, 3), 10), grow_layers=False)
model.compile(
    optimizer=keras.optimizers.SGD(learning_rate=0.1),
    loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    jit_compile=False,
)
growing = GrowingCallback(Budget(target=0.3, lambda_channel_base=50.0))
history = model.fit(images, labels, batch_size=8, epochs=1, callbacks=[growing], verbose=0)
losses = history.history["loss"]
assert np.isfinite(losses).all(), losses
print("STEPS_DONE", int(model.optimizer.iterations))
"""

STOCK_KERAS_64 = """
import keras
import numpy as np
from tfgrow.models import keras_resnet_cifar

rng = np.random.default_rng(0)
images = rng.normal(size=(24, 64, 64, 3)).astype("float32")
labels = rng.integers(0, 10, size=24).astype("int32")
# Width x0.5: 8-channel stage-1 stream into the strided 1x1 shortcut, as MorphNet and the
# width-multiplier baseline produce (README: 13 and 11 channels).
model = keras_resnet_cifar((64, 64, 3), 10, width_multiplier=0.5)
model.compile(
    optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
)
history = model.fit(images, labels, batch_size=8, epochs=1, verbose=0)
assert np.isfinite(history.history["loss"]).all()
print("STEPS_DONE", int(model.optimizer.iterations))
"""

TRAINER = """
import numpy as np
import tensorflow as tf
import tfgrow
from tfgrow.budget import Budget
from tfgrow.masks import Temperature
from tfgrow.models import keras_resnet_cifar
from tfgrow.train.strategy import make_strategy
from tfgrow.train.trainer import Trainer

size, replicas, batch, steps, depth = {size}, {replicas}, {batch}, {steps}, {depth}
strategy = make_strategy("mirrored", num_cpu_devices=2) if replicas == 2 else (
    tf.distribute.OneDeviceStrategy("/cpu:0"))
rng = np.random.default_rng(0)
images = rng.normal(size=(batch * steps, size, size, 1)).astype("float32")
labels = rng.integers(0, 10, batch * steps).astype("int32")
with strategy.scope():
    model = keras_resnet_cifar((size, size, 1), 10, depth=depth)
    network = tfgrow.grow(model, grow_layers=False)
    network.channel_multiple = 8  # the launcher's ragged-mode default
    trainer = Trainer(
        network, strategy, global_batch_size=batch, steps_per_epoch=steps,
        learning_rate=lambda step: 0.1, mask_learning_rate=lambda step: 10.0,
        temperature=Temperature(num_epochs=1), seed=1,
        budget=Budget(target=0.3, update_steps=1, lambda_channel_base=1.0),
    )
data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(batch)
assert strategy.num_replicas_in_sync == replicas
for step_batch in strategy.experimental_distribute_dataset(data):
    loss = float(trainer.train_step(step_batch)["loss_sum"])
    assert np.isfinite(loss), loss
print("STEPS_DONE", int(trainer.step.numpy()))
"""


def _run(script, expected_steps):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=REPO)
    env.pop("TF_ENABLE_ONEDNN_OPTS", None)  # the crash needs oneDNN on (TF's CPU default)
    result = subprocess.run(
        [sys.executable, "-X", "faulthandler", "-c", textwrap.dedent(script)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, (
        f"exit status {result.returncode} (negative: killed by that signal)\n"
        f"{result.stderr[-3000:]}"
    )
    assert f"STEPS_DONE {expected_steps}" in result.stdout, result.stdout


@pytest.mark.slow
def test_fit_growing_resnet20_on_64x64_images():
    _run(FIT_64, expected_steps=3)


@pytest.mark.slow
def test_fit_narrow_stock_keras_resnet20_on_64x64_images():
    _run(STOCK_KERAS_64, expected_steps=3)


@pytest.mark.slow
def test_trainer_growing_resnet20_on_64x64_images():
    _run(TRAINER.format(size=64, replicas=1, batch=8, steps=2, depth=20), expected_steps=2)


@pytest.mark.slow
def test_two_replicas_with_an_odd_global_batch():
    # 33 splits 17 + 16: the stage-3 shortcut's filter gradient ran on [17, 14, 14, 8]. ResNet-8
    # has the same strided shortcuts as ResNet-20 and traces in a third of the time.
    _run(TRAINER.format(size=28, replicas=2, batch=33, steps=2, depth=8), expected_steps=2)
