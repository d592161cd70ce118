"""A checkpoint restores every piece of run state: weights, logits, counters, BN statistics,
optimiser slots, step, lambdas and FLOP accumulators."""

import numpy as np
import tensorflow as tf

from tests.fixtures.runs import tiny_resnet
from tfgrow.budget import Budget
from tfgrow.masks import Temperature
from tfgrow.train.checkpoint import make_checkpoint
from tfgrow.train.trainer import Trainer


def _build():
    network = tiny_resnet(depth=20)  # gated blocks: gate logits and counters are run state too
    schedule = lambda step: 0.1  # noqa: E731
    trainer = Trainer(
        network,
        tf.distribute.get_strategy(),
        4,
        10,
        schedule,
        schedule,
        Temperature(num_epochs=1),
        budget=Budget(update_steps=1),
    )
    return network, trainer


def test_restore_brings_back_the_whole_run_state(tmp_path):
    network, trainer = _build()
    batch = (tf.random.normal([4, 8, 8, 1]), tf.constant([0, 1, 2, 0]))
    for _ in range(2):
        trainer.train_step(batch)
    path = make_checkpoint(network, trainer).save(str(tmp_path / "ckpt"))
    restored_network, restored_trainer = _build()
    make_checkpoint(restored_network, restored_trainer).restore(path).assert_consumed()
    for saved, restored in zip(network.variables, restored_network.variables):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy(), err_msg=saved.path)
    assert any(np.any(g.counters.numpy() > 0) for g in restored_network.channel_groups.values())
    for name in ("step", "lambda_channel", "train_flops", "train_flops_full"):
        assert restored_trainer.read(name) == trainer.read(name)
    for saved, restored in zip(
        trainer.weight_optimizer.velocities, restored_trainer.weight_optimizer.velocities
    ):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    # The resumed trainer continues exactly where the first one would have.
    np.testing.assert_allclose(
        trainer.train_step(batch)["loss_sum"],
        restored_trainer.train_step(batch)["loss_sum"],
        rtol=1e-6,
    )
