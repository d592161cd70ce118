"""Export of grown LSTM/GRU models: stock Keras layers at the kept widths, weights sliced per gate
block, computing the grown model's inference (from a fresh state), counting like the summary, as
a SavedModel and (where the converter takes it) TFLite."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.fixtures import sequences
from tests.fixtures.sequences import grown_model
from tfgrow import cost, export
from tfgrow.graph import count_model
from tfgrow.growing.plain import plain_keras_model
from tfgrow.growing.recurrent import reset_states
from tfgrow.masks import Temperature

TEMPERATURE = Temperature(1.0, 200.0, "structure", 4.0)
EPOCH = 2.0
VARIANTS = ["lstm", "gru", "gru_reset_before", "lstm_last_output", "lstm_stateful"]


def _inference(grown, tokens):
    reset_states(grown)
    return grown.forward(tokens, grown.deterministic_context(TEMPERATURE, EPOCH)).numpy()


@pytest.mark.parametrize("variant", VARIANTS)
def test_export_is_stock_layers_at_the_kept_widths_computing_the_inference(variant):
    _, grown = grown_model(variant)
    widths, _ = grown.architecture()
    sizes = {name: group.size for name, group in grown.channel_groups.items()}
    assert all(widths[name] < sizes[name] for name in sizes), widths
    plain = export.plain_model(grown, TEMPERATURE, EPOCH)
    assert all(type(layer).__module__.startswith("keras.") for layer in plain.layers)
    for name in ("rnn1", "rnn2"):
        layer = plain.get_layer(name)
        assert layer.units == widths[name] and not layer.stateful and layer.unroll
    assert plain.get_layer("embedding").output_dim == widths["embedding"]
    tokens = sequences.tokens(3)
    np.testing.assert_allclose(plain(tokens).numpy(), _inference(grown, tokens), atol=1e-5)
    assert count_model(plain) == cost.count(grown.layer_costs, widths)
    assert count_model(plain)[0] == plain.count_params()


def test_export_of_stateful_model_equals_the_first_batch_from_a_fresh_state():
    # The export is stateless: it computes every batch from zero states, as the grown model's
    # first batch after reset_states; the grown model's second batch carries state.
    _, grown = grown_model("lstm_stateful")
    plain = export.plain_model(grown, TEMPERATURE, EPOCH)
    first, second = sequences.tokens(1), sequences.tokens(2)
    reset_states(grown)
    context = grown.deterministic_context(TEMPERATURE, EPOCH)
    grown_first = grown.forward(first, context).numpy()
    grown_second = grown.forward(second, context).numpy()
    np.testing.assert_allclose(plain(first).numpy(), grown_first, atol=1e-5)
    assert not np.allclose(plain(second).numpy(), grown_second, atol=1e-3)
    assert export.check_outputs(grown, TEMPERATURE, EPOCH, plain) < 1e-5


def test_non_unit_mask_values_on_recurrent_units_are_refused():
    _, grown = grown_model("lstm")
    channels, gates = export.kept_structures(grown, TEMPERATURE, EPOCH)
    indices, values = channels["rnn1"]
    channels["rnn1"] = (indices, values * 0.5)
    with pytest.raises(ValueError, match="mask values 1.*'rnn1'"):
        plain_keras_model(grown, channels, gates)


def test_saved_model_and_tflite_compute_the_export(tmp_path):
    _, grown = grown_model("lstm")
    plain = export.plain_model(grown, TEMPERATURE, EPOCH)
    tokens = sequences.tokens(4)
    expected = plain(tokens).numpy()
    path = export.export_model(plain, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(path)
    served = loaded.signatures["serve"](tokens=tf.constant(tokens))
    np.testing.assert_allclose(next(iter(served.values())).numpy(), expected, atol=1e-5)
    tflite = export.export_model(plain, str(tmp_path / "tflite"), format="tflite")
    assert os.path.getsize(tflite) > 0
    interpreter = tf.lite.Interpreter(model_path=tflite)
    (input_detail,), (output_detail,) = (
        interpreter.get_input_details(),
        interpreter.get_output_details(),
    )
    interpreter.resize_tensor_input(input_detail["index"], tokens.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(input_detail["index"], tokens)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(output_detail["index"]), expected, atol=1e-4)
    keras.backend.clear_session()
