"""Keras `fit` with a GrowingCallback: the README example (a Keras model grown by `tfgrow.grow`),
growth under the budget, exact resume through model.save / load_model, config round trips,
MirroredStrategy, non-finite losses."""

import os
import re
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tests.fixtures.processes import REPO, run_script
from tests.fixtures.runs import tiny_basic3resnet, tiny_resnet
from tfgrow.budget import Budget
from tfgrow.masks import MaskGroup
from tfgrow.train.callback import GrowingCallback
from tfgrow.train.errors import NonFiniteLossError


def _readme_fit_example():
    with open(os.path.join(REPO, "README.md")) as f:
        readme = f.read()
    section = readme[readme.index("## Training with model.fit") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _data(num_examples=64, shape=(8, 8, 1), num_classes=3):
    rng = np.random.default_rng(0)
    images = rng.normal(size=(num_examples, *shape)).astype("float32")
    return images, rng.integers(0, num_classes, size=num_examples).astype("int32")


def _compiled(network, learning_rate=0.1, momentum=0.9):
    network.compile(
        optimizer=keras.optimizers.SGD(learning_rate, momentum=momentum),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        jit_compile=False,
    )
    return network


def test_readme_fit_example_runs_as_written(tmp_path):
    result = run_script(_readme_fit_example(), cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    fractions = re.search(r"budget fraction per epoch: \[(.*)\]", result.stdout).group(1)
    first, last = (float(v) for v in fractions.split(","))
    assert first < 0.01 < 0.1 < last  # grown from the seed towards the 30% target
    assert (tmp_path / "grown.keras").exists()
    assert (tmp_path / "grown_export" / "saved_model.pb").exists()


def test_fit_samples_grows_under_budget_and_advances_counters(tmp_path):
    keras.utils.set_random_seed(0)
    network = _compiled(tiny_resnet(width_multiplier=0.5), momentum=0.0)  # widths 8, 16, 32
    off_logits = {name: group.logits.numpy() < 0 for name, group in network.channel_groups.items()}
    before = {name: group.logits.numpy() for name, group in network.channel_groups.items()}
    images, labels = _data()
    callback = GrowingCallback(Budget(target=1.0), log_every_steps=2, log_dir=str(tmp_path))
    history = network.fit(images, labels, batch_size=16, epochs=2, callbacks=[callback], verbose=0)
    # Under budget: lambda < 0, so the penalty pushes every off logit up (grow), sampled or not.
    assert all(value < 0 for value in history.history["lambda_channel"])
    for name, group in network.channel_groups.items():
        moved = group.logits.numpy() - before[name]
        assert np.all(moved[off_logits[name]] > 0), name
    # Counters count epochs active: the seed channel (p = sigma(3) = 0.95) was active in most of
    # the 8 steps, each worth 1/4 epoch; channels never sampled stay at 0.
    stem_counters = network.channel_groups["stem_conv"].counters.numpy()  # the stage-1 stream
    assert 1.0 <= stem_counters[0] <= 2.0
    assert callback.update.read("train_flops") < callback.update.read("train_flops_full")
    assert history.history["train_cost_savings"][-1] > 1.0
    tags = set()
    for event_file in tf.io.gfile.glob(str(tmp_path / "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            tags |= {value.tag for value in event.summary.value}
    assert {"fit/budget_fraction", "fit/lambda_channel", "fit/loss"} <= tags


def test_a_mask_group_config_round_trips():
    group = MaskGroup(5, kind="layer", num_on=0, logit_on=2.0, parent="p", name="group")
    config = group.get_config()
    clone = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(group))
    assert type(clone) is MaskGroup and clone.get_config() == config


def test_save_and_load_mid_training_resumes_fit_exactly(tmp_path):
    images, labels = _data()

    def network():
        keras.utils.set_random_seed(0)
        model = tiny_basic3resnet()
        for group in model.group_variables().values():
            group.logits.assign(tf.fill(group.logits.shape, 0.5))  # blocks and channels mixed
        return _compiled(model)

    def callback():
        return GrowingCallback(Budget(target=0.5), epochs=2, seed=3, log_every_steps=0)

    straight = network()
    straight.fit(images, labels, batch_size=16, epochs=2, shuffle=False, callbacks=[callback()])

    first_half = network()
    first_half.fit(images, labels, batch_size=16, epochs=1, shuffle=False, callbacks=[callback()])
    path = str(tmp_path / "mid.keras")
    first_half.save(path)
    resumed = keras.models.load_model(path)  # no custom_objects: the classes are registered
    assert type(resumed) is type(first_half)
    for saved, loaded in zip(first_half.variables, resumed.variables):
        assert saved.path == loaded.path
        np.testing.assert_array_equal(saved.numpy(), loaded.numpy(), err_msg=saved.path)
    assert int(resumed.optimizer.iterations.numpy()) == 4
    np.testing.assert_allclose(resumed(images[:8]), first_half(images[:8]), atol=1e-6)

    resumed.fit(
        images,
        labels,
        batch_size=16,
        epochs=2,
        initial_epoch=1,
        shuffle=False,
        callbacks=[callback()],
    )
    assert resumed.architecture() == straight.architecture()
    for a, b in zip(straight.variables, resumed.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)


def test_a_growing_network_needs_the_callback_to_train():
    network = _compiled(tiny_resnet())
    with pytest.raises(ValueError, match="Expected a GrowingCallback"):
        network.fit(*_data(16), batch_size=8, epochs=1, verbose=0)


def test_a_non_finite_loss_stops_fit_at_its_step():
    network = _compiled(tiny_resnet(), learning_rate=1e30)
    callback = GrowingCallback(Budget(target=0.5), log_every_steps=0)
    with pytest.raises(NonFiniteLossError, match="Non-finite training loss at step"):
        network.fit(*_data(64), batch_size=8, epochs=3, callbacks=[callback], verbose=0)
    assert network.stop_training


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import keras, numpy as np, tensorflow as tf
    import tfgrow
    from tfgrow.budget import Budget
    from tfgrow.models import keras_resnet_cifar
    from tfgrow.train.callback import GrowingCallback
    from tfgrow.train.strategy import make_strategy

    mirrored = make_strategy("mirrored", num_cpu_devices=2)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(32, 8, 8, 1)).astype("float32")
    labels = rng.integers(0, 3, 32).astype("int32")

    def build():  # ResNet-20: channels and the gates of 6 blocks
        return tfgrow.grow(keras_resnet_cifar((8, 8, 1), 3, width_multiplier=0.25))

    def run(strategy):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = build()
            for group in model.group_variables().values():
                group.logits.assign(tf.fill(group.logits.shape, 0.5))
            model.compile(
                keras.optimizers.SGD(0.1, momentum=0.9),
                keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=False,
            )
        callback = GrowingCallback(Budget(target=0.3), seed=1, log_every_steps=0)
        history = model.fit(images, labels, batch_size=8, epochs=2, shuffle=False,
                            callbacks=[callback], verbose=0)
        weights = [np.array(v.numpy()) for v in model.weights]
        return model.architecture(), history.history, weights

    arch_one, history_one, weights_one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
    arch_two, history_two, weights_two = run(mirrored)
    assert mirrored.num_replicas_in_sync == 2
    assert arch_one == arch_two, (arch_one, arch_two)
    np.testing.assert_allclose(history_one["loss"], history_two["loss"], rtol=1e-4)
    assert history_one["train_flops"] == history_two["train_flops"]
    for a, b in zip(weights_one, weights_two):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    print("FIT_MIRRORED_OK", history_two["loss"])
    """
)


def test_fit_under_mirrored_strategy_on_two_cpus_matches_one_device():
    result = run_script(MIRRORED_SCRIPT, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "FIT_MIRRORED_OK" in result.stdout


def test_a_full_network_fits_without_the_callback_and_updates_batch_norm():
    keras.utils.set_random_seed(0)
    network = _compiled(tiny_resnet(growing=False))
    stem = network.source.get_layer("stem_bn")
    moving_mean = stem.moving_mean.numpy()
    history = network.fit(*_data(32), batch_size=8, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert not np.array_equal(stem.moving_mean.numpy(), moving_mean)


def test_a_network_of_your_own_fits_and_round_trips(tmp_path):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8, 8, 1), name="images")
    # No batch norm: growing multiplies the conv's output by its mask values itself.
    features = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="features")(inputs)
    pooled = keras.layers.GlobalAveragePooling2D(name="pool")(features)
    outputs = keras.layers.Dense(3, name="classifier")(pooled)
    network = tfgrow.grow(keras.Model(inputs, outputs, name="mine"))
    _compiled(network)
    images, labels = _data(32)
    callback = GrowingCallback(Budget(target=0.5), log_every_steps=0)
    network.fit(images, labels, batch_size=8, epochs=1, callbacks=[callback], verbose=0)
    assert network.channel_groups["features"].counters.numpy().sum() > 0
    network.save(str(tmp_path / "mine.keras"))
    loaded = keras.models.load_model(str(tmp_path / "mine.keras"))
    np.testing.assert_allclose(loaded(images), network(images), atol=1e-6)
