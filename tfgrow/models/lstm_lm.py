"""A word-level LSTM language model (Zaremba et al. 2014), the paper's Appendix A.6 network.

`tokens [B, T] -> Embedding -> Dropout -> (LSTM -> Dropout) x num_layers -> Dense(vocabulary)`:
logits `[B, T, vocabulary]` for the next token at every position. Dropout is on the
non-recurrent connections only. The LSTMs are stateful (`stateful=True`): each keeps one state
per row of its fixed batch, so row b of a batch continues from where row b of the previous batch
stopped (`tfgrow.data.text`); the run resets the states at the start of every training epoch and
before every evaluation.

Zaremba et al.'s configurations (keep probability = 1 - dropout):
- medium: 2 x 650 units, dropout 0.5, init_scale 0.05;
- large: 2 x 1500 units, dropout 0.65, init_scale 0.04 (the growing paper's PTB model).
"""

import gin
import keras


@gin.configurable(module="tfgrow.models", denylist=["batch_size"])
def lstm_language_model(
    input_shape,
    num_classes,
    batch_size=None,
    units=200,
    embedding_size=None,
    num_layers=2,
    dropout=0.0,
    init_scale=None,
):
    """A stacked-LSTM language model of stock Keras layers, returning logits.

    Args:
        input_shape: `(num_steps,)`, the tokens of one window (`tfgrow.data.TextStreams`).
        num_classes: the vocabulary size (embedding rows and output logits).
        batch_size: rows of every batch (the stateful LSTMs keep one state per row); the
            launcher passes `tfgrow.train.global_batch_size`.
        units: hidden units of each LSTM.
        embedding_size: width of the word embedding; None: `units`.
        num_layers: stacked LSTMs.
        dropout: drop rate after the embedding and after each LSTM (Zaremba's keep probability
            0.35 is dropout 0.65).
        init_scale: None keeps Keras' initialisers; a number initialises the embedding and
            every kernel uniformly in `[-init_scale, init_scale]` as Zaremba et al. (biases stay
            Keras' default: zero, forget gate 1).

    Returns:
        A functional `keras.Model` from int32 tokens `[batch_size, num_steps]` to logits
        `[batch_size, num_steps, num_classes]`.

    Example:
    >>> model = lstm_language_model((35,), 10000, batch_size=20, units=32)
    >>> model.input_shape, model.output_shape
    ((20, 35), (20, 35, 10000))
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(
            "Expected a positive integer batch_size: the stateful LSTMs keep one state per row "
            f"of a fixed batch. Received: batch_size={batch_size!r}. The launcher passes "
            "tfgrow.train.global_batch_size; in Python pass batch_size=..."
        )
    if len(tuple(input_shape)) != 1:
        raise ValueError(
            f"Expected input_shape (num_steps,), token windows. Received: {tuple(input_shape)}"
        )
    for name, value in (("units", units), ("num_layers", num_layers), ("vocabulary", num_classes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"Expected {name} to be a positive integer. Received: {value!r}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"Expected dropout in [0, 1). Received: dropout={dropout!r}")

    def initializer(default):
        # One instance per weight: an unseeded Keras initializer draws the same values on every
        # call, so a shared one would give equal-shaped kernels equal values.
        return keras.initializers.RandomUniform(-init_scale, init_scale) if init_scale else default

    inputs = keras.Input(batch_shape=(batch_size, *input_shape), dtype="int32", name="tokens")
    x = keras.layers.Embedding(
        num_classes,
        embedding_size or units,
        embeddings_initializer=initializer("uniform"),
        name="embedding",
    )(inputs)
    x = keras.layers.Dropout(dropout, name="embedding_dropout")(x)
    for index in range(1, num_layers + 1):
        x = keras.layers.LSTM(
            units,
            stateful=True,
            return_sequences=True,
            kernel_initializer=initializer("glorot_uniform"),
            recurrent_initializer=initializer("orthogonal"),
            name=f"lstm_{index}",
        )(x)
        x = keras.layers.Dropout(dropout, name=f"lstm_{index}_dropout")(x)
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=initializer("glorot_uniform"), name="logits"
    )(x)
    return keras.Model(inputs, logits, name=f"lstm_lm_{num_layers}x{units}")
