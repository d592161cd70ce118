"""Sampling, temperatures and H(s) of mask groups (METHOD.md §1.2, §1.4-§1.6)."""

import numpy as np
import pytest
import tensorflow as tf

from tfgrow.masks import MaskGroup, Temperature, active_set, capacity_set, sample_mask


def _group(size=8, **kwargs):
    group = MaskGroup(size, **kwargs)
    group.build()
    return group


def test_seed_initialisation_turns_on_one_structure():
    group = _group(16)
    logits = group.logits.numpy()
    assert logits[0] == 3.0 and np.all(logits[1:] == -3.0)
    assert int(group.deterministic_count()) == 1


def test_channel_group_keeps_its_largest_logit_when_all_are_negative():
    group = _group(4)
    group.logits.assign([-2.0, -0.5, -4.0, -1.0])
    np.testing.assert_array_equal(group.deterministic_keep().numpy(), [False, True, False, False])


def test_layer_gate_can_be_off():
    gate = _group(1, kind="layer", num_on=0)
    assert not bool(gate.deterministic_keep()[0])


def test_sampling_frequency_matches_sigmoid_probability():
    logits = tf.constant([-2.0, 0.0, 1.0, 3.0])
    beta = tf.constant([1.0, 1.0, 2.0, 1.0])
    draws = np.stack(
        [
            sample_mask(logits, beta, tf.constant([7, i]), at_least_one=False)[0].numpy()
            for i in range(4000)
        ]
    )
    expected = 1 / (1 + np.exp(-(beta * logits).numpy()))
    np.testing.assert_allclose(draws.mean(0), expected, atol=0.03)


def test_sampling_is_a_function_of_the_seed():
    logits = tf.zeros([64])
    beta = tf.ones([64])
    first = sample_mask(logits, beta, tf.constant([1, 5]))[0]
    again = sample_mask(logits, beta, tf.constant([1, 5]))[0]
    other = sample_mask(logits, beta, tf.constant([1, 6]))[0]
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)


def test_gradient_reaches_only_sampled_logits_through_the_mask():
    logits = tf.Variable([0.3, -0.2, 0.1, -1.0, 2.0, 0.0])
    beta = tf.constant(2.0)
    with tf.GradientTape() as tape:
        q, relaxed = sample_mask(logits, beta, tf.constant([3, 3]))
        active = active_set(q, relaxed)
        weights = tf.range(1.0, 1.0 + tf.cast(tf.size(active.values), tf.float32))
        task = tf.reduce_sum(active.values * weights)
    gradient = tape.gradient(task, logits).numpy()
    q = q.numpy()
    assert np.all(gradient[~q] == 0.0)
    sigma = 1 / (1 + np.exp(-2.0 * logits.numpy()))
    # d m_j / d s_j = beta sigma'(beta s_j) times the coefficient of m_j in the task loss.
    expected = 2.0 * sigma * (1 - sigma) * np.cumsum(q) * q
    np.testing.assert_allclose(gradient, expected, rtol=1e-5)


def test_empty_draw_keeps_the_largest_logit():
    logits = tf.constant([-30.0, -20.0, -40.0])
    q, _ = sample_mask(logits, tf.ones([3]), tf.constant([0, 0]))
    np.testing.assert_array_equal(q.numpy(), [False, True, False])


def test_gumbel_relaxation_draws_with_the_same_marginals():
    logits = tf.constant([-1.0, 0.0, 2.0])
    draws = np.stack(
        [
            sample_mask(logits, tf.ones([3]), tf.constant([2, i]), "gumbel", False)[0].numpy()
            for i in range(4000)
        ]
    )
    # P(sigma(s + L) > 0.5) = P(L > -s) = sigma(s) for logistic noise L.
    np.testing.assert_allclose(draws.mean(0), 1 / (1 + np.exp(-logits.numpy())), atol=0.03)


def test_structure_temperature_follows_active_time_and_global_follows_epochs():
    schedule = Temperature(beta0=1.0, final=200.0, mode="structure", num_epochs=10)
    counters = tf.constant([0.0, 5.0, 10.0])
    np.testing.assert_allclose(
        schedule.beta(counters, 3.0).numpy(), [1.0, 200**0.5, 200.0], rtol=1e-5
    )
    global_schedule = Temperature(mode="global", num_epochs=10)
    np.testing.assert_allclose(
        global_schedule.beta(counters, 5.0).numpy(), [200**0.5] * 3, rtol=1e-5
    )


def test_bad_settings_say_what_was_received():
    with pytest.raises(ValueError, match="Received: mode='local'"):
        Temperature(mode="local")
    with pytest.raises(ValueError, match="Received: size=0"):
        MaskGroup(0)


def test_active_set_is_complete_only_when_it_computes_every_channel_in_order():
    values = tf.constant([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
    every = active_set(tf.ones([6], tf.bool), values)
    assert bool(every.complete)
    np.testing.assert_array_equal(every.indices.numpy(), np.arange(6))
    np.testing.assert_allclose(every.values.numpy(), values.numpy())  # mask values still apply
    # 5 of 6 kept, rounded up to 8 and capped at 6: channel 2 pads the set, in place, value 0.
    keep = tf.constant([True, True, False, True, True, True])
    padded = active_set(keep, values, multiple=4)
    assert bool(padded.complete)
    np.testing.assert_array_equal(padded.indices.numpy(), np.arange(6))
    np.testing.assert_allclose(padded.values.numpy(), [0.9, 0.8, 0.0, 0.6, 0.5, 0.4])
    np.testing.assert_array_equal(padded.mask.numpy(), keep.numpy().astype(np.float32))
    # 3 kept, rounded up to 4: the first unkept channel (2) pads; indices stay in order.
    keep = tf.constant([True, True, False, False, True, False])
    partial = active_set(keep, values, multiple=4)
    assert not bool(partial.complete)
    np.testing.assert_array_equal(partial.indices.numpy(), [0, 1, 2, 4])
    np.testing.assert_allclose(partial.values.numpy(), [0.9, 0.8, 0.0, 0.5])


def test_full_capacity_is_complete_at_trace_time_and_drops_nothing():
    keep = tf.constant([True, False, True, True])
    values = tf.constant([0.9, 0.8, 0.7, 0.6])
    active, dropped = capacity_set(keep, values, values, 4)
    assert active.complete is True and active.known_complete and int(dropped) == 0
    np.testing.assert_array_equal(active.indices.numpy(), np.arange(4))
    np.testing.assert_allclose(active.values.numpy(), [0.9, 0.0, 0.7, 0.6])
    below, _ = capacity_set(keep, values, values, 3)
    assert below.complete is False and not below.known_complete
