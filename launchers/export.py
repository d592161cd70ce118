r"""Exports a finished run's network as a SavedModel (or a TFLite file) of stock Keras layers.

Usage:
  python -m launchers.export --model_dir=runs/fashion_mnist_resnet20_grow \
    --export_dir=exports/resnet20_grow [--format=saved_model|tflite] [--traceback]

Growing runs are rebuilt from model_dir/operative_config.gin and restored from the latest
checkpoint (a `tfgrow.grow` run exports its source Keras model at H(s), through
tfgrow/graph/slicing.py); MorphNet runs export model_dir/final_model.keras. The export is checked
against summary.json (params and FLOPs) and, for growing runs, against the restored network's
inference (export_info.json: max_output_difference), and written atomically: a temporary
directory beside --export_dir, renamed into place when complete. Only a previous tfgrow export is
replaced; the run's own directory, a directory containing it, a file or any other non-empty
directory stop the export with exit status 1. Serve it with
  saved_model_cli run --dir=EXPORT_DIR --tag_set=serve --signature_def=serve \
    --input_exprs='images=np.zeros((1, 28, 28, 1), np.float32)'
Exit status: 0 done, 2 an input was refused, 1 the export failed, 130 Ctrl-C.
"""

from absl import app, flags, logging

from tfgrow import cli

flags.DEFINE_string("model_dir", None, "The run's directory (summary.json, checkpoints/).")
flags.DEFINE_string(
    "export_dir", None, "Directory to write: new, empty, or a previous tfgrow export to replace."
)
flags.DEFINE_enum("format", "saved_model", ["saved_model", "tflite"], "What to write.")
flags.mark_flags_as_required(["model_dir", "export_dir"])
FLAGS = flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    cli.quiet_startup()
    from tfgrow import run_export

    info = run_export.export_run(FLAGS.model_dir, FLAGS.export_dir, FLAGS.format)
    logging.info(
        "done: %s params %d flops %d -> %s",
        info["model"],
        info["params"],
        info["flops"],
        info["path"],
    )


if __name__ == "__main__":
    cli.run(main, output_flag="export_dir")
