"""Draw every figure of a run directory: PNG files, and TensorBoard images during training."""

import io
import json
import os
import re

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfgrow.plots.events import read_scalars  # noqa: E402
from tfgrow.plots.growing import draw_growing_figures  # noqa: E402
from tfgrow.plots.morphnet import draw_morphnet_figures  # noqa: E402

PLOTS_DIR = "plots"  # the figures of a run go to model_dir/plots/<name>.png
_STRUCTURE = re.compile(r"^structure_iter(\d+)\.json$")
DPI = 100


class NoRunError(ValueError):
    """Raised when a directory holds neither TensorBoard events nor a MorphNet structure."""


def draw_run(model_dir):
    """Every figure the run's files allow.

    Args:
        model_dir: a run directory of `launchers.train` (finished or running).

    Returns:
        dict figure name -> (matplotlib figure, panel titles).

    Raises:
        NoRunError: the directory has nothing to draw from.
    """
    summary = _read_json(os.path.join(model_dir, "summary.json"))
    structures = _structures(model_dir)
    if structures or (summary or {}).get("method") in ("morphnet", "width_multiplier"):
        figures = draw_morphnet_figures(summary, structures)
    else:
        figures = draw_growing_figures(read_scalars(os.path.join(model_dir, "train")))
    if not figures:
        raise NoRunError(
            f"Nothing to plot in {model_dir!r}: expected TensorBoard events with architecture "
            "scalars in train/ (a growing run writes them from its first logged step) or a "
            "MorphNet run's structure_iter<i>.json / summary.json. Check --model_dir."
        )
    return figures


def write_run_plots(model_dir, out_dir=None):
    """Draws the run's figures and writes them as PNGs (atomically: temporary file, rename).

    Args:
        model_dir: the run directory.
        out_dir: where the PNGs go; default `model_dir/plots`.

    Returns:
        dict PNG path -> panel titles.
    """
    out_dir = out_dir or os.path.join(model_dir, PLOTS_DIR)
    tf.io.gfile.makedirs(out_dir)
    written = {}
    for name, (figure, titles) in draw_run(model_dir).items():
        path = os.path.join(out_dir, f"{name}.png")
        temporary = path + ".tmp"
        with tf.io.gfile.GFile(temporary, "wb") as f:
            f.write(png_bytes(figure))
        tf.io.gfile.rename(temporary, path, overwrite=True)
        written[path] = titles
    return written


def log_run_images(writer, model_dir, step):
    """Writes the growing run's current figures as TensorBoard images (tag `plots/<name>`).

    Args:
        writer: the run's `tf.summary` writer (flushed here first, so the figures include every
            scalar logged so far).
        model_dir: the run directory whose `train/` events the writer writes.
        step: the summary step.
    """
    writer.flush()
    figures = draw_growing_figures(read_scalars(os.path.join(model_dir, "train")))
    with writer.as_default(step=int(step)):
        for name, (figure, _) in figures.items():
            image = tf.io.decode_png(png_bytes(figure), channels=4)
            tf.summary.image(f"plots/{name}", image[None])
    writer.flush()


def png_bytes(figure):
    """The figure as PNG bytes; closes it (matplotlib keeps open figures alive)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    plt.close(figure)
    return buffer.getvalue()


def _read_json(path):
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def _structures(model_dir):
    if not tf.io.gfile.isdir(model_dir):
        return {}
    found = {}
    for name in tf.io.gfile.listdir(model_dir):
        match = _STRUCTURE.match(name)
        if match:
            found[int(match.group(1))] = _read_json(os.path.join(model_dir, name))
    return found
