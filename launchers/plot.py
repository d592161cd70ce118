r"""Redraws the architecture plots of a finished or running tfgrow run.

Usage:
  python -m launchers.plot --model_dir=runs/fashion_mnist_resnet20_grow [--out_dir=DIR]

A growing run: active channel ratio per group and per stage, blocks on per stage (layer growing),
mean temperature per group, budget fraction and lambda over training (read from the run's
TensorBoard events in model_dir/train). A MorphNet run: learned, expanded and uniform widths per
layer (summary.json, structure_iter<i>.json). PNGs go to --out_dir (default model_dir/plots).
"""

import sys

from absl import app, flags, logging

flags.DEFINE_string("model_dir", None, "Run directory written by launchers.train.")
flags.DEFINE_string("out_dir", None, "Where the PNGs go; default MODEL_DIR/plots.")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from tfgrow.plots.run import NoRunError, write_run_plots

    try:
        written = write_run_plots(FLAGS.model_dir, FLAGS.out_dir)
    except NoRunError as error:
        logging.error("%s", error)
        sys.exit(1)
    for path, titles in written.items():
        logging.info("wrote %s (%s)", path, "; ".join(titles))


if __name__ == "__main__":
    app.run(main)
