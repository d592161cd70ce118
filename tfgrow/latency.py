"""The budget metric "latency": an architecture's predicted training-step time (METHOD.md §1.3).

FLOPs do not price time on real hardware: on this project's CPU a convolution's time follows its
channel counts in steps of oneDNN's 8- and 16-channel blocks, and batch norm and ReLU follow
activation sizes. So `LatencyTable` measures, on the run's device, one training step (forward
and both backward products) of every layer of the network at every width pair on a grid of
multiples of the device's channel granularity, and predicts a step of an architecture as

    step(widths, blocks) = scale * sum over layers of table[layer](c_in, c_out) + overhead

with each width rounded up to the granularity (what the device computes) and looked up, or
interpolated linearly between grid points where a layer is too wide to measure every multiple
(`max_grid_points` per side). The sum is calibrated once, `step = scale * sum + overhead`, on two
measured steps of stock Keras models: the full network and the smallest one (what the sum leaves
out: loss, optimiser update, residual adds, pooling; what timing layers alone adds). The
budget's fraction is step(H(s)) / step(full network); lambda follows (current - target) as for
params and FLOPs.

Entries are keyed by what decides a layer's time (kind, kernel, strides, input size, widths,
dtype, batch) and cached per device in a JSON file, so a second run on the same machine measures
nothing. `benchmarks/latency_table.py` checks predictions against measured steps of stock Keras
models at random architectures.
"""

import hashlib
import json
import os
import platform
import tempfile

import gin
import numpy as np
import tensorflow as tf

from tfgrow import cost as cost_lib
from tfgrow.graph import slicing
from tfgrow.timing import stock_step, time_interleaved


@gin.configurable(module="tfgrow")
def latency_settings(granularity=8, max_grid_points=8, repeats=5, cache_dir=None):
    """How the latency table is measured (gin: `tfgrow.latency_settings.granularity = 16`).

    Args:
        granularity: the device's channel granularity: widths are rounded up to a multiple of
            it (8 matches `tfgrow.train.channel_multiple` and oneDNN's AVX-512 blocks).
        max_grid_points: at most this many measured widths per side of a layer; wider layers
            are measured at evenly spaced multiples and interpolated between them.
        repeats: timed calls per entry (median), after two warm-up calls.
        cache_dir: where the per-device cache lives (default `~/.cache/tfgrow/latency`).
    """
    return {
        "granularity": int(granularity),
        "max_grid_points": int(max_grid_points),
        "repeats": int(repeats),
        "cache_dir": cache_dir or os.path.join(os.path.expanduser("~"), ".cache/tfgrow/latency"),
    }


def device_key():
    """The device a table is valid for: CPU model (or GPU name), core count, TF version."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", "gpu")
    else:
        name = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                models = [line.split(":", 1)[1].strip() for line in f if "model name" in line]
            name = models[0] if models else name
        except OSError:  # no /proc (not Linux): the platform's name identifies the CPU
            name = platform.processor() or platform.machine()
    return f"{name}|{os.cpu_count()} cores|tf {tf.__version__}"


def grid(full_width, granularity, max_points):
    """Measured widths of one side: multiples of `granularity` (at most `max_points`, evenly
    spaced, always the smallest), and the full width."""
    multiples = list(range(granularity, full_width, granularity))
    if len(multiples) > max_points - 1:
        picks = np.linspace(0, len(multiples) - 1, max_points - 1).round().astype(int)
        multiples = [multiples[i] for i in sorted(set(picks))]
    return sorted(set(multiples) | {int(full_width)})


class LatencyTable:
    """Predicted training-step time of any architecture of a network, from measured layers.

    Args:
        layers: the network's `LayerCost` list (`model.layer_costs` of a `tfgrow.grow` model).
        batch_size: examples per device step.
        dtype: the compute dtype the layers are timed in.
        settings: `latency_settings()` (default: gin's).
    """

    def __init__(self, layers, batch_size, dtype="float32", settings=None):
        self.settings = settings or latency_settings()
        self.layers = list(layers)
        recurrent = [
            layer.name for layer in layers if layer.gates != 1 or layer.kind == "embedding"
        ]
        if recurrent:
            raise ValueError(
                "Expected conv, dense and batch-norm layers for the latency table, which times "
                f"each as one op. Received LSTM/GRU/Embedding entries: {recurrent}. Use "
                "tfgrow.Budget.metric = 'params' or 'flops' for a recurrent network."
            )
        missing = [layer.name for layer in layers if not _timed(layer)]
        if missing:
            raise ValueError(
                "Expected every layer to carry its input size for the latency table (the graph "
                f"engine's layer costs do: tfgrow.grow). Received layers without it: {missing}. "
                "Use tfgrow.Budget.metric = 'params' or 'flops' for this network."
            )
        self.batch_size = int(batch_size)
        self.dtype = str(dtype)
        self.scale, self.overhead = 1.0, 0.0  # `calibrate` fits both
        self.calibration = {}
        self.cache_path = os.path.join(
            self.settings["cache_dir"],
            hashlib.sha1(device_key().encode()).hexdigest()[:16] + ".json",
        )
        self._entries = self._read_cache()
        self.measured = 0  # entries measured by this table (not found in the cache)
        granularity, points = self.settings["granularity"], self.settings["max_grid_points"]
        self.grids, self.tables = [], []
        for layer in self.layers:
            full_in, full_out = _full_widths(layer)
            # Depthwise convs and batch norm depend on one width: their input side is trivial.
            one_sided = layer.kind in ("depthwise", "batch_norm")
            grid_in = [1] if one_sided else grid(full_in, granularity, points)
            grid_out = grid(full_out, granularity, points)
            table = [[self._seconds(layer, c_in, c_out) for c_out in grid_out] for c_in in grid_in]
            self.grids.append((grid_in, grid_out))
            self.tables.append(np.asarray(table, np.float64))
        self._write_cache()

    # ------------------------------------------------------------------ prediction
    def layer_sum(self, widths, blocks=None):
        """Sum of the layers' table times at `widths` / `blocks` (Python numbers or tensors)."""
        blocks = blocks or {}
        total = 0.0
        for layer, (grid_in, grid_out), table in zip(self.layers, self.grids, self.tables):
            c_in, c_out = cost_lib.layer_widths(layer, widths)
            seconds = _lookup(table, grid_in, grid_out, c_in, c_out, self.settings["granularity"])
            if layer.block is not None and layer.block in blocks:
                seconds = seconds * cost_lib.exact(blocks[layer.block])
            total = total + seconds
        return total

    def full_widths(self):
        return cost_lib.full_widths(self.layers)

    def fraction(self, widths, blocks=None):
        """predict(widths, blocks) / predict(full network)."""
        return self.predict(widths, blocks) / self.predict(self.full_widths())

    def predict(self, widths, blocks=None):
        """Predicted seconds of one training step at `widths` / `blocks`."""
        return self.scale * self.layer_sum(widths, blocks) + self.overhead

    def calibrate(self, network, batch, rounds=3, steps_per_round=3):
        """Fits `step = scale * layer_sum + overhead` to two measured stock Keras steps.

        The layers' sum leaves out what a whole step adds (loss, optimiser update, residual
        adds, pooling) and counts what timing layers alone adds (a call per layer), so it is
        mapped affinely onto steps measured at both ends: the full network and the smallest
        one (every group at the granularity).

        Args:
            network: the `tfgrow.grow` model whose `layer_costs` the table prices.
            batch: (images, labels) of the device batch size.
            rounds, steps_per_round: as `tfgrow.timing.time_interleaved`.

        Returns:
            (scale, overhead in seconds).
        """
        full = self.full_widths()
        small = {name: min(width, self.settings["granularity"]) for name, width in full.items()}
        steps = {
            "full": stock_step(stock_model_at_widths(network, full)),
            "small": stock_step(stock_model_at_widths(network, small)),
        }
        measured = time_interleaved(steps, batch, rounds, steps_per_round)
        sums = {"full": float(self.layer_sum(full)), "small": float(self.layer_sum(small))}
        if sums["full"] > sums["small"] and measured["full"] > measured["small"]:
            self.scale = (measured["full"] - measured["small"]) / (sums["full"] - sums["small"])
        else:  # no spread to fit (a network of one width): scale the sum to the full step
            self.scale = measured["full"] / max(sums["full"], 1e-12)
        # May be negative: the fit passes through both measured steps, and every architecture
        # lies between them.
        self.overhead = measured["full"] - self.scale * sums["full"]
        self.calibration = {"measured": measured, "layer_sums": sums}
        return self.scale, self.overhead

    # ------------------------------------------------------------------ measurement
    def _seconds(self, layer, c_in, c_out):
        key = _key(layer, c_in, c_out, self.batch_size, self.dtype)
        if key not in self._entries:
            self._entries[key] = _measure(
                layer, c_in, c_out, self.batch_size, self.dtype, self.settings["repeats"]
            )
            self.measured += 1
        return self._entries[key]

    def _read_cache(self):
        try:
            with open(self.cache_path) as f:
                return dict(json.load(f)["entries"])
        except (OSError, ValueError, KeyError, TypeError):
            return {}  # no cache, or a damaged one: measure again

    def _write_cache(self):
        if not self.measured:
            return
        directory = os.path.dirname(self.cache_path)
        os.makedirs(directory, exist_ok=True)
        data = {"device": device_key(), "entries": self._entries}
        handle, temporary = tempfile.mkstemp(dir=directory, suffix=".tmp")
        with os.fdopen(handle, "w") as f:
            json.dump(data, f)
        os.replace(temporary, self.cache_path)  # atomic: readers see the old or the new file


def stock_model_at_widths(network, widths):
    """`network`'s source Keras model rebuilt at `widths` (group -> width; others full), fresh
    weights: what a step at that architecture computes."""
    graph = network.graph
    sizes = [widths.get(name, size) for name, size in zip(graph.group_names, graph.group_sizes)]
    return slicing.build_at_widths(network.source, graph, sizes, name=f"stock_{network.name}")


def _timed(layer):
    """Whether the table can time `layer`: convs need their input size (graph engine)."""
    return layer.kind in ("batch_norm", "dense") or bool(layer.input_size)


def _full_widths(layer):
    return cost_lib.layer_widths(layer, cost_lib.full_widths([layer]))


def _key(layer, c_in, c_out, batch, dtype):
    size = "x".join(str(n) for n in layer.input_size) or str(layer.output_pixels)
    kernel = "x".join(str(n) for n in layer.kernel_size)
    strides = "x".join(str(n) for n in layer.strides)
    return f"{layer.kind}|k{kernel}|s{strides}|in{size}|{c_in}->{c_out}|b{batch}|{dtype}"


def _lookup(table, grid_in, grid_out, c_in, c_out, granularity):
    """table at (c_in, c_out) rounded up to the granularity; linear between grid points."""
    row_weights = _interpolation_weights(grid_in, c_in, granularity)
    column_weights = _interpolation_weights(grid_out, c_out, granularity)
    if tf.is_tensor(row_weights) or tf.is_tensor(column_weights):
        rows = tf.cast(row_weights, tf.float64)
        columns = tf.cast(column_weights, tf.float64)
        return tf.reduce_sum(rows[:, None] * tf.constant(table) * columns[None, :])
    return float(np.asarray(row_weights) @ table @ np.asarray(column_weights))


def _interpolation_weights(points, width, granularity):
    """Weights over `points` whose dot product with values at them interpolates at `width`
    rounded up to the granularity (clipped to the grid's ends).

    Hat functions, one formula for Python numbers (numpy) and tensors (inside the step): the
    weight of p_i rises linearly from the previous point and falls to the next one.
    """
    points = np.asarray(points, np.float64)
    if len(points) == 1:
        return np.ones(1)
    ops = tf.math if tf.is_tensor(width) else np
    width = tf.cast(width, tf.float64) if tf.is_tensor(width) else np.float64(width)
    rounded = ops.minimum(ops.ceil(width / granularity) * granularity, points[-1])
    rounded = ops.maximum(rounded, points[0])
    left = np.concatenate([[points[0] - 1.0], points[:-1]])
    right = np.concatenate([points[1:], [points[-1] + 1.0]])
    rising = (rounded - left) / (points - left)
    falling = (right - rounded) / (right - points)
    return ops.maximum(np.float64(0.0), ops.minimum(rising, falling))


def _measure(layer, c_in, c_out, batch, dtype, repeats):
    """Median seconds of one forward and backward pass of `layer` at (c_in, c_out)."""
    rng = np.random.default_rng(0)
    dtype = tf.as_dtype(dtype)

    def tensor(*shape):
        return tf.constant(rng.normal(size=shape), dtype)

    if layer.kind == "batch_norm":
        pixels = int(layer.output_pixels)
        x = tensor(batch, pixels, 1, c_out)
        gamma, beta = tensor(c_out), tensor(c_out)

        def forward(x, gamma, beta):  # what Keras' BatchNormalization computes, then ReLU
            mean, variance = tf.nn.moments(x, [0, 1, 2])
            return tf.nn.relu(tf.nn.batch_normalization(x, mean, variance, beta, gamma, 1e-3))

        arguments = (x, gamma, beta)
    elif layer.kind == "dense":
        arguments = (tensor(batch, c_in), tensor(c_in, c_out))

        def forward(x, kernel):
            return tf.matmul(x, kernel)
    else:
        h, w = layer.input_size
        kh, kw = layer.kernel_size
        strides = [1, *layer.strides, 1]
        if layer.kind == "depthwise":
            arguments = (tensor(batch, h, w, c_out), tensor(kh, kw, c_out, 1))

            def forward(x, kernel):
                return tf.nn.depthwise_conv2d(x, kernel, strides, "SAME")
        else:
            arguments = (tensor(batch, h, w, c_in), tensor(kh, kw, c_in, c_out))

            def forward(x, kernel):
                return tf.nn.conv2d(x, kernel, strides, "SAME")

    @tf.function
    def step(*arguments):
        with tf.GradientTape() as tape:
            tape.watch(arguments)
            y = forward(*arguments)
            loss = tf.reduce_sum(tf.cast(y, tf.float32))
        gradients = tape.gradient(loss, arguments)
        return tf.add_n([tf.reduce_sum(tf.cast(g, tf.float32)) for g in gradients])

    seconds = time_interleaved({"layer": lambda _: step(*arguments)}, None, repeats, 1)
    return seconds["layer"]
