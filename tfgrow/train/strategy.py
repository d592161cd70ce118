"""`tf.distribute` strategies by name: default, one_device, mirrored, multi_worker, tpu."""

import os

import gin
import tensorflow as tf

from tfgrow.errors import first_line

STRATEGIES = ("default", "one_device", "mirrored", "multi_worker", "tpu")
MAX_CPU_DEVICES = 64  # logical CPU devices; each holds a copy of the model


@gin.configurable(module="tfgrow")
def make_strategy(name="default", tpu=None, num_cpu_devices=1, devices=None):
    """Builds the distribution strategy a run uses.

    Args:
        name: one of STRATEGIES. "tpu" is implied by a non-empty `tpu`.
        tpu: TPU name or "local" (from the launcher's --tpu flag).
        num_cpu_devices: split the host CPU into this many logical devices first (e.g. 2 to run
            "mirrored" on a CPU-only machine). Must be set before TensorFlow initialises devices.
        devices: explicit device list for "mirrored" (default: all GPUs, else all CPUs).

    Returns:
        A `tf.distribute.Strategy`.
    """
    if tpu:
        name = "tpu"
    if name not in STRATEGIES:
        raise ValueError(
            f"Expected strategy name in {STRATEGIES}. Received: name={name!r}. Set it with "
            "--gin_bindings=\"tfgrow.make_strategy.name='mirrored'\" or pass --tpu=NAME."
        )
    if isinstance(num_cpu_devices, bool) or not isinstance(num_cpu_devices, int):
        num_cpu_devices = _invalid_cpu_devices(num_cpu_devices)
    if not 1 <= num_cpu_devices <= MAX_CPU_DEVICES:
        _invalid_cpu_devices(num_cpu_devices)
    if num_cpu_devices > 1:
        split_cpu(num_cpu_devices)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "one_device":
        gpus = tf.config.list_logical_devices("GPU")
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if devices is None:
            gpus = tf.config.list_logical_devices("GPU")
            devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return _tpu_strategy(tpu)


def _invalid_cpu_devices(value):
    raise ValueError(
        f"Expected tfgrow.make_strategy.num_cpu_devices to be an integer in [1, "
        f"{MAX_CPU_DEVICES}]. Received: num_cpu_devices={value!r}. Fix: e.g. "
        "--gin_bindings=\"tfgrow.make_strategy.num_cpu_devices=2\" with name='mirrored'."
    )


def _tpu_strategy(tpu):
    """TPUStrategy on the named Cloud TPU; a ValueError saying so when it cannot be reached."""
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
            tpu="" if tpu in (None, "local") else tpu
        )
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, RuntimeError, OSError, tf.errors.OpError) as error:
        reason = first_line(error, if_empty=type(error).__name__)
        raise ValueError(
            f"Expected --tpu to name a Cloud TPU this machine can reach ('local' on a TPU VM). "
            f"Received: --tpu={tpu!r}, which could not be resolved ({reason}). Fix: check the "
            "name with `gcloud compute tpus list`, or leave --tpu out to train on CPU/GPU."
        ) from error
    return tf.distribute.TPUStrategy(resolver)


def split_cpu(num_devices):
    """Splits the physical CPU into `num_devices` logical devices (once, before first use)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    existing = tf.config.get_logical_device_configuration(cpu)
    if existing and len(existing) == num_devices:
        return
    try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
        )
    except RuntimeError as error:
        raise RuntimeError(
            f"Could not split the CPU into {num_devices} logical devices: TensorFlow was already "
            "initialised. Choose the strategy before building models or datasets."
        ) from error


def is_chief(strategy):
    """Whether this process writes the run's outputs (always, outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    cluster = resolver.cluster_spec().as_dict() if resolver is not None else {}
    if not cluster or resolver.task_type is None:
        return True
    if resolver.task_type == "chief":
        return True
    return "chief" not in cluster and resolver.task_type == "worker" and resolver.task_id == 0


def output_dir(strategy, model_dir):
    """Where this process writes: `model_dir` for the chief, a per-worker directory otherwise.

    MultiWorkerMirroredStrategy needs every worker to save checkpoints (variables are read with
    collectives); the non-chief ones write beside the chief's, under `workers/`.
    """
    if is_chief(strategy):
        return model_dir
    resolver = strategy.cluster_resolver
    return os.path.join(model_dir, "workers", f"{resolver.task_type}_{resolver.task_id}")
