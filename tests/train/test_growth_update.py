"""`model.fit` with a GrowingCallback on a `tfgrow.grow`'d Keras ResNet, against the launcher's
Trainer: both run the one per-step growth update (`tfgrow/growing/update.py`).

With plain SGD (no momentum, no weight decay: `MaskedMomentum` is then exactly SGD on the computed
entries, and uncomputed entries have zero gradient) and one learning rate for weights and logits,
the two paths take the same steps: same masks, same penalty, same updates. So after the same
steps from the same seed they agree on weights, logits, counters, lambda and training FLOPs up to
float round-off (Keras averages the loss as a mean, the Trainer as sum / global batch).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfgrow
from tfgrow import cost
from tfgrow.budget import Budget
from tfgrow.growing.update import GrowthUpdate
from tfgrow.masks import Temperature
from tfgrow.models import keras_resnet_cifar
from tfgrow.train.callback import GrowingCallback
from tfgrow.train.trainer import Trainer

BATCH = 4
STEPS = 4  # one epoch of 16 examples
SEED = 3
LEARNING_RATE = 0.1
# lambda_c_base = 5 moves the logits visibly within 4 steps (lambda ~ -2.5 from the seed).
BUDGET = Budget(target=0.5, lambda_channel_base=5.0, lambda_layer_base=1.0, update_steps=1)


def _grown():
    keras.utils.set_random_seed(0)
    grown = tfgrow.grow(keras_resnet_cifar((8, 8, 1), 3, width_multiplier=0.5), grow_layers=True)
    rng = np.random.default_rng(1)  # mixed draws: logits around 0, blocks on and off
    for group in grown.group_variables().values():
        group.logits.assign(rng.normal(0.0, 1.0, group.logits.shape).astype(np.float32))
    return grown


def _data():
    rng = np.random.default_rng(0)
    images = rng.normal(size=(BATCH * STEPS, 8, 8, 1)).astype("float32")
    return images, rng.integers(0, 3, BATCH * STEPS).astype("int32")


def _compiled():
    grown = _grown()
    grown.compile(
        optimizer=keras.optimizers.SGD(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    return grown


def _fitted():
    grown = _compiled()
    callback = GrowingCallback(BUDGET, epochs=3, seed=SEED, log_every_steps=0)
    images, labels = _data()
    grown.fit(images, labels, batch_size=BATCH, epochs=1, shuffle=False, callbacks=[callback])
    return grown, callback.update


def _trained():
    grown = _grown()
    trainer = Trainer(
        grown,
        tf.distribute.get_strategy(),
        global_batch_size=BATCH,
        steps_per_epoch=STEPS,
        learning_rate=lambda step: LEARNING_RATE,
        mask_learning_rate=lambda step: LEARNING_RATE,
        temperature=Temperature(num_epochs=3),
        momentum=0.0,
        weight_decay=0.0,
        mask_momentum=0.0,
        seed=SEED,
        budget=BUDGET,
    )
    images, labels = _data()
    for step in range(STEPS):
        batch = slice(step * BATCH, (step + 1) * BATCH)
        trainer.train_step((images[batch], labels[batch]))
    return grown, trainer.growth


@pytest.fixture(scope="module")
def runs():
    return _fitted(), _trained()


def test_fit_and_the_trainer_take_the_same_steps(runs):
    (fitted, fit_update), (trained, trainer_update) = runs
    before = _grown()
    # Same draws, same H(s): the counts agree exactly (measured: weights within 2.4e-7).
    for name in ("train_flops", "train_flops_full", "lambda_channel", "lambda_layer"):
        assert fit_update.read(name) == trainer_update.read(name), name
    # Full-network FLOPs: 3 x forward x batch per step (METHOD.md §1.7); the sampled ones less.
    assert fit_update.read("train_flops_full") == 3 * fitted.full_cost()[1] * BATCH * STEPS
    assert fit_update.read("train_flops") < fit_update.read("train_flops_full")
    for name, group in fitted.group_variables().items():
        other = trained.group_variables()[name]
        np.testing.assert_array_equal(group.counters, other.counters, err_msg=name)
        np.testing.assert_allclose(group.logits, other.logits, rtol=1e-5, atol=1e-5, err_msg=name)
        # Every logit moved: sampled ones by the task and budget terms, the others by lambda.
        assert np.all(group.logits.numpy() != before.group_variables()[name].logits.numpy())
    assert any(np.any(g.counters.numpy() > 0) for g in fitted.group_variables().values())
    for a, b in zip(fitted.variables, trained.variables):
        assert a.path == b.path
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-5, err_msg=a.path)
    images, _ = _data()
    # Inference at H(s) with the run's temperatures, one epoch in.
    context = trained.deterministic_context(trainer_update.temperature, 1.0)
    expected = trained.forward(images, context)
    np.testing.assert_allclose(fitted(images), expected, rtol=1e-4, atol=1e-4)
    # The weights moved: the full network's output logits differ from the initial ones.
    moved = fitted.forward(images, fitted.full_context())
    assert not np.allclose(moved, before.forward(images, before.full_context()), atol=1e-3)


def test_fit_counts_the_sampled_subnetworks_training_flops():
    """One step: train_flops is 3 x the forward FLOPs of the drawn sub-network x batch."""
    grown = _compiled()
    # The draw of step 0, replayed on an identical network before it trains.
    replica = _grown()
    replay = GrowthUpdate(replica, Temperature(num_epochs=3), STEPS, BUDGET, seed=SEED)
    widths, blocks = replica.widths_and_blocks(replay.begin(tf.constant(0, tf.int64)).context)
    forward = float(cost.count(replica.layer_costs, widths, blocks)[1])
    assert 0 < forward < replica.full_cost()[1]
    callback = GrowingCallback(BUDGET, epochs=3, steps_per_epoch=STEPS, seed=SEED)
    images, labels = _data()
    grown.fit(images[:BATCH], labels[:BATCH], batch_size=BATCH, callbacks=[callback], verbose=0)
    assert callback.update.read("train_flops") == pytest.approx(3 * forward * BATCH)


def test_a_fitted_grown_model_round_trips_through_keras_save(runs, tmp_path):
    (fitted, _), _ = runs
    path = str(tmp_path / "grown.keras")
    fitted.save(path)
    loaded = keras.models.load_model(path)  # no custom_objects: GrowingModel is registered
    assert type(loaded) is type(fitted) and loaded.growth_update is None
    assert loaded.architecture() == fitted.architecture()
    for saved, restored in zip(fitted.variables, loaded.variables):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy(), err_msg=saved.path)
    images, _ = _data()
    # The saved temperatures and epoch give the loaded model the fitted one's inference.
    np.testing.assert_allclose(loaded(images), fitted(images), atol=1e-6)
