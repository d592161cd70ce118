"""Measured training-step time of a run's final architecture and of its full network.

FLOPs do not predict time on real hardware: on this project's 2-core CPU the main job's grown
ResNet-20 has 38% of the full network's FLOPs, but its convolutions take 70% of the full
network's convolution time (widths round up to oneDNN's blocks of 8 and 16 channels, and stage 1
runs at its full 16 channels in most steps). So a growing run ends by timing, in its own process
and on its own device, one training step of two stock Keras models trained by the same step code:

- the final architecture H(s) (`tfgrow.export.plain_model`, what the export writes), and
- the full network (every structure kept),

interleaved over a few rounds, median per model. `summary.json` records both and their ratio
(`step_time_final_s`, `step_time_full_s`, `step_time_ratio`), next to the FLOPs ratio.

The stock step and the interleaved timing are `tfgrow.timing`'s.
"""

from tfgrow import export as export_lib
from tfgrow.timing import stock_step, time_interleaved


def architecture_models(network, temperature, epoch):
    """{"full": the full network, "final": H(s) (growing networks only)} as stock Keras models."""
    models = {"full": export_lib.full_plain_model(network)}
    if network.growing:
        models["final"] = export_lib.plain_model(network, temperature, epoch)
    return models


def architecture_step_times(network, batch, temperature, epoch, steps_per_round=5, rounds=3):
    """Step time of the final architecture H(s) and of the full network, as stock Keras models.

    Args:
        network: the run's network (a growing one, or a full one: then both are the same model
            and it is timed once).
        batch: (images, labels) of the run's global batch size.
        temperature, epoch: the run's `Temperature` and final epoch (H(s)'s mask values).
        steps_per_round, rounds: as `time_interleaved`.

    Returns:
        {"step_time_final_s", "step_time_full_s", "step_time_ratio"}.
    """
    models = architecture_models(network, temperature, epoch)
    steps = {name: stock_step(model) for name, model in models.items()}
    seconds = time_interleaved(steps, batch, rounds, steps_per_round)
    final = seconds.get("final", seconds["full"])
    return {
        "step_time_final_s": final,
        "step_time_full_s": seconds["full"],
        "step_time_ratio": final / seconds["full"],
    }
