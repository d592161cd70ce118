r"""Trains a tfgrow experiment described by gin files.

Usage:
  python -m launchers.train \
    --gin_file=configs/experiments/fashion_mnist_resnet20_grow.gin \
    [--gin_file=configs/tiny.gin] [--gin_bindings="tfgrow.train.epochs=2"] \
    --model_dir=/tmp/runs/resnet20_grow [--tpu=NAME|local] [--traceback]

Every setting lives in gin except the output directory and the TPU name, which are flags. The
operative gin config, checkpoints, TensorBoard events and summary.json go to --model_dir. Exit
status: 0 done, 2 an input was refused (nothing written), 1 the run failed, 130 Ctrl-C.
"""

import os

from absl import app, flags, logging

from tfgrow import cli

flags.DEFINE_multi_string("gin_file", [], "Gin config files, applied in order.")
flags.DEFINE_multi_string("gin_bindings", [], "Gin bindings applied after the files.")
flags.DEFINE_string("model_dir", None, "Output directory (local path or gs://).")
flags.DEFINE_string("tpu", None, "Cloud TPU name, or 'local'; selects TPUStrategy.")
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    cli.quiet_startup()
    from tfgrow import config as config_lib
    from tfgrow.train.loop import train
    from tfgrow.train.strategy import make_strategy
    from tfgrow.train.validation import check_output_dir

    check_output_dir(FLAGS.model_dir)
    config_lib.parse(FLAGS.gin_file, FLAGS.gin_bindings, search_path=REPO_ROOT)
    logging.info(
        "model_dir %s  gin files %s  bindings %s",
        os.path.abspath(FLAGS.model_dir) if "://" not in FLAGS.model_dir else FLAGS.model_dir,
        FLAGS.gin_file,
        FLAGS.gin_bindings or "none",
    )
    strategy = make_strategy(tpu=FLAGS.tpu)
    summary = train(model_dir=FLAGS.model_dir, strategy=strategy)
    extra = ""
    if "step_time_ratio" in summary:  # growing runs: measured H(s) step vs the full network's
        extra = (
            f"  step time final/full {summary['step_time_ratio']:.2f}x "
            f"(FLOPs {summary['flops'] / summary['flops_full']:.2f}x)"
        )
    if "test_perplexity" in summary:  # language models
        extra += (
            f"  perplexity valid {summary['eval_perplexity']:.2f} "
            f"test {summary['test_perplexity']:.2f}"
        )
    logging.info(
        "done: eval_accuracy %.4f  params %d/%d  train_cost_savings %.2fx%s  wall %.0fs  -> %s",
        summary["eval_accuracy"],
        summary["params"],
        summary["params_full"],
        summary["train_cost_savings"],
        extra,
        summary["wall_time_s"],
        os.path.join(FLAGS.model_dir, "summary.json"),
    )


if __name__ == "__main__":
    cli.run(main, output_flag="model_dir")
