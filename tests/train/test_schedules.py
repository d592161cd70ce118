"""Learning-rate schedules: Zaremba et al.'s epoch decay, and its refusal without epochs."""

import numpy as np
import pytest

from tfgrow.train.schedules import learning_rate_schedule


def test_epoch_decay_holds_the_rate_then_multiplies_it_after_every_epoch():
    # 3 steps per epoch, 2 constant epochs, then halved: Zaremba's small model (4 epochs, / 2).
    schedule = learning_rate_schedule(
        15, 1.0, "epoch_decay", decay=0.5, constant_epochs=2, steps_per_epoch=3
    )
    rates = [float(schedule(step)) for step in range(15)]
    np.testing.assert_allclose(rates, [1.0] * 6 + [0.5] * 3 + [0.25] * 3 + [0.125] * 3)
    # Zaremba's large model: 14 epochs at 1, then / 1.15 per epoch; epoch 54 (the 55th) at
    # 1.15 ** -41.
    large = learning_rate_schedule(
        55 * 10, 1.0, "epoch_decay", decay=1 / 1.15, constant_epochs=14, steps_per_epoch=10
    )
    assert float(large(139)) == 1.0
    np.testing.assert_allclose(float(large(140)), 1 / 1.15, rtol=1e-6)
    np.testing.assert_allclose(float(large(549)), 1.15**-41, rtol=1e-5)


def test_epoch_decay_without_steps_per_epoch_is_refused():
    with pytest.raises(ValueError, match="steps_per_epoch"):
        learning_rate_schedule(100, 1.0, "epoch_decay")
