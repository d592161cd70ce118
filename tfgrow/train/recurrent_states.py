"""Resetting the carried state of stateful recurrent layers, in one place.

A language model's stateful LSTMs carry their state from one batch to the next
(`tfgrow.data.text`); `tfgrow.train.growing_run` zeroes it at the start of every training epoch
and before every evaluation through `reset_recurrent_states`, the one call both use.
"""


def reset_recurrent_states(model):
    """Zeroes the state of every stateful layer (e.g. `LSTM(stateful=True)`) of a model.

    Args:
        model: a Keras model, or a growing network of `tfgrow.grow` (its `source` Keras model
            holds the layers and their state variables).

    Returns:
        The number of layers reset (0 for a model without stateful layers).
    """
    source = getattr(model, "source", model)
    layers = [layer for layer in getattr(source, "layers", ()) if getattr(layer, "stateful", False)]
    for layer in layers:
        layer.reset_states()
    return len(layers)
