"""What every tfgrow launcher does around its `main`: a quiet TensorFlow start-up and errors
turned into one paragraph and an exit status, never a traceback.

Exit status: 0 done; 2 an input was refused before any work (gin binding, path, dataset name,
builder, setting out of range); 1 a flag absl could not parse, or the run stopped on an error
(an export that cannot be made, non-finite loss, unreadable checkpoint, TensorFlow or OS error,
or a bug: its traceback goes to a log file named in the message); 130 Ctrl-C.
`--traceback` prints the full traceback as well. This module imports TensorFlow only when asked,
so a launcher can call `quiet_startup()` before anything loads it.
"""

import os
import re
import sys
import tempfile
import time
import traceback

from absl import app, flags

from tfgrow.errors import first_paragraph

flags.DEFINE_bool("traceback", False, "On an error, print the full traceback too.")

EXIT_REFUSED = 2
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130
# What TensorFlow and its CUDA stubs print at start-up on a CPU-only machine, below our level.
_NOISE = re.compile(
    r"All log messages before absl::InitializeLog|oneDNN custom operations are on|"
    r"cpu_feature_guard|To enable the following instructions|rebuild TensorFlow with|"
    r"cudart_stub|Could not find cuda drivers|cuda_platform|failed call to cuInit|"
    r"Unable to register cu(DNN|FFT|BLAS) factory|computation placer already registered|"
    r"TF-TRT Warning|cuda_executor|cuda_dnn|cuda_blas|cuda_fft"
)
_GIN_CONTEXT = re.compile(r"^\s+In call to configurable|^\s+No values supplied by Gin|^\s+Gin had")


def quiet_startup():
    """Imports TensorFlow with its start-up banners filtered out and sets log levels.

    TF_CPP_MIN_LOG_LEVEL=2 (unless the user set it) hides C++ info and warnings; the oneDNN
    banner and CUDA probes are printed through absl before that setting applies, so the native
    stderr is captured while TensorFlow loads and enumerates devices, and only lines that are
    not known start-up noise are passed on. Python-side: absl at INFO for tfgrow's console,
    TensorFlow's own logger at ERROR.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    verbose = os.environ["TF_CPP_MIN_LOG_LEVEL"] == "0"
    captured = b""
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        if not verbose:
            sys.stderr.flush()
            os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # the CUDA probes print here
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        captured = sink.read()
    for line in captured.decode(errors="replace").splitlines():
        if line.strip() and not _NOISE.search(line):
            print(line, file=sys.stderr)
    tf.get_logger().setLevel("ERROR")
    from absl import logging

    logging.set_verbosity(logging.INFO)
    handler = logging.get_absl_handler()
    if not any(isinstance(f, _OwnInfoOnly) for f in handler.filters):
        handler.addFilter(_OwnInfoOnly())


class _OwnInfoOnly:
    """Passes warnings and errors, and info lines only from tfgrow's own code: TensorFlow logs
    routine info through absl too (e.g. 'Sharding callback duration' at every checkpoint)."""

    _OWN = re.compile(r"[/\\](tfgrow|launchers|benchmarks)[/\\]")

    def filter(self, record):
        path = record.pathname or ""
        return record.levelno > 20 or (bool(self._OWN.search(path)) and "site-packages" not in path)


def run(main, output_flag=None):
    """`app.run(main)` with tfgrow's error handling (module docstring).

    Args:
        main: the launcher's `main(argv)`.
        output_flag: the flag naming the directory the launcher creates; if it did not exist
            before and the run fails leaving it empty, it is removed again.
    """
    app.run(lambda argv: sys.exit(guarded_call(main, argv, output_flag)))


def run_in_process(main, argv, output_flag=None):
    """Parses `argv` (program name first) into the flags and runs `main` as `run` would.

    For tests and `benchmarks/bad_inputs.py`, which try many inputs in one process. The gin
    configuration is cleared first.

    Returns:
        The exit status.
    """
    import gin

    gin.clear_config()
    flags.FLAGS.unparse_flags()
    try:
        argv = flags.FLAGS(argv)
    except flags.Error as error:
        print(f"FATAL Flags parsing error: {error}", file=sys.stderr)
        return EXIT_FAILED
    try:
        return guarded_call(main, argv, output_flag)
    except app.UsageError as error:
        print(f"FATAL {error}", file=sys.stderr)
        return EXIT_FAILED


def guarded_call(main, argv, output_flag=None):
    """Runs `main(argv)`; returns its exit status, printing one paragraph on an error."""
    directory = getattr(flags.FLAGS, output_flag) if output_flag else None
    existed = bool(directory) and os.path.lexists(directory)
    try:
        main(argv)
        return 0
    except (app.UsageError, SystemExit):
        raise
    except KeyboardInterrupt:
        status, message = (
            EXIT_INTERRUPTED,
            (
                "Interrupted (Ctrl-C). Checkpoints written at the end of each finished epoch are "
                "kept; run the same command again to resume from the latest one."
            ),
        )
    except Exception as error:  # noqa: BLE001 - every error becomes a message, never a traceback
        status, message, unexpected = describe(error)
        if unexpected and not flags.FLAGS.traceback:
            log = _write_traceback(error)
            message += f" Full traceback (for a bug report): {log}, or rerun with --traceback."
    if flags.FLAGS.traceback:
        traceback.print_exc(file=sys.stderr)
    print(f"tfgrow: error: {message}", file=sys.stderr)
    if directory and not existed:
        remove_empty_tree(directory)
    return status


def describe(error):
    """(exit status, one-paragraph message, whether it looks like a bug) for an exception."""
    from tfgrow.config import ConfigError
    from tfgrow.data import DatasetNotFoundError
    from tfgrow.train.validation import InputError

    text = first_paragraph(error, skip_line=_GIN_CONTEXT.match)
    bare = text.rstrip(".")
    name = type(error).__name__
    if isinstance(error, (InputError, ConfigError, DatasetNotFoundError)):
        return EXIT_REFUSED, text, False
    if isinstance(error, ValueError):
        return EXIT_REFUSED, f"{name}: {text}", False
    if type(error).__module__.startswith("tfgrow"):  # ExportError, CheckpointError, NaN loss
        return EXIT_FAILED, f"{name}: {text}", False
    if _is_gin_call_error(error):
        return (
            EXIT_REFUSED,
            f"The gin configuration could not be applied: {name}: {bare}. Fix the binding it "
            "names (a reference is written @name, without '()'; README, 'Configuration').",
            False,
        )
    import tensorflow as tf

    if isinstance(error, tf.errors.ResourceExhaustedError):
        return (
            EXIT_FAILED,
            f"Out of memory ({bare}). Lower tfgrow.train.global_batch_size or use a smaller model.",
            False,
        )
    if isinstance(error, OSError):
        return (
            EXIT_FAILED,
            f"{name}: {bare}. Check the path, its permissions and the free space.",
            False,
        )
    if isinstance(error, tf.errors.OpError):
        return EXIT_FAILED, f"TensorFlow {name}: {bare}.", True
    return (
        EXIT_FAILED,
        f"Unexpected {name}: {bare}. This is probably a bug in tfgrow; please report it.",
        True,
    )


def _is_gin_call_error(error):
    """Whether gin failed to call a configurable (missing or unexpected arguments)."""
    message = str(error)
    if message.startswith("Required bindings") or "No values supplied by Gin" in message:
        return True
    first = message.splitlines()[0] if message else ""
    return (
        isinstance(error, TypeError)
        and "In call to configurable" in message
        and ("argument" in first or "not callable" in first)
    )


def _write_traceback(error):
    """Writes the traceback to a file in the temporary directory (never the run's directory)."""
    path = os.path.join(
        tempfile.gettempdir(), f"tfgrow-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    )
    try:
        with open(path, "w") as f:
            f.write(f"tfgrow {' '.join(sys.argv)}\n")
            traceback.print_exception(error, file=f)
    except OSError:
        return "(could not be written)"
    return path


def remove_empty_tree(directory):
    """Removes `directory` if it holds nothing but empty directories (never a file)."""
    if "://" in directory or not os.path.isdir(directory):
        return
    for root, _, files in os.walk(directory, topdown=False):
        if files:
            return
        try:
            os.rmdir(root)
        except OSError:
            return
