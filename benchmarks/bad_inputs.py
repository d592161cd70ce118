r"""Tries every bad input of `benchmarks/bad_input_cases.py` and prints what tfgrow answers.

For each case: the exit status (or the exception an API call raises), whether anything was
written into the case's directory, whether a traceback reached the user, and the first line of
the message. Launcher cases run in this process where they can (one TensorFlow import for all),
export cases in one child process (the two launchers define the same flags), and the cases
marked `subprocess` as real launcher processes.

Usage:
  nice python -m benchmarks.bad_inputs [--json=PATH] [--only=train|export|api] [--match=TEXT]

Exits non-zero when a case breaks a rule: exit 0 on a refused input, a traceback, or a write
where none is allowed.
"""

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(root):
    """path -> (size, mtime) of everything under `root`."""
    found = {}
    for directory, subdirectories, files in os.walk(root):
        for name in subdirectories + files:
            path = os.path.join(directory, name)
            stat = os.lstat(path)
            found[os.path.relpath(path, root)] = (stat.st_size, stat.st_mtime_ns)
    return found


def launcher_argv(case, root):
    flags = [flag.replace("{root}", root) for flag in case.flags]
    if case.add_model_dir and not any(flag.startswith("--model_dir") for flag in flags):
        flags.insert(0, f"--model_dir={root}/run")
    return flags


def message_line(output):
    """The line a user reads first: tfgrow's error line, absl's flag error, else the last."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for prefix in ("tfgrow: error:", "FATAL", "E0", "Traceback"):
        for line in lines:
            if line.startswith(prefix) or (prefix == "FATAL" and "FATAL" in line):
                return line.replace("tfgrow: error: ", "")
    return lines[-1] if lines else ""


def error_line(error):
    """The line of an exception's message that says what was expected (Keras wraps errors
    raised in `call` under a header line), without terminal colours."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    useful = [line for line in lines if "Expected" in line or "expected" in line]
    return (useful or lines or [""])[0]


@contextlib.contextmanager
def captured_output():
    """Captures sys.stdout, sys.stderr and absl's log stream into one buffer."""
    from absl import logging

    buffer = io.StringIO()
    handler = logging.get_absl_handler().python_handler
    stream = handler.stream
    handler.stream = buffer
    try:
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(buffer):
            yield buffer
    finally:
        handler.stream = stream


def run_in_process(case, root):
    from tfgrow import cli

    if case.launcher == "train":
        from launchers import train as launcher

        output_flag = "model_dir"
    else:
        from launchers import export as launcher

        output_flag = "export_dir"
    timer = None
    if case.interrupt_after:
        import _thread

        timer = threading.Timer(case.interrupt_after, _thread.interrupt_main)
        timer.start()
    with captured_output() as buffer, ctrl_c_raises():
        status = cli.run_in_process(
            launcher.main, [case.launcher, *launcher_argv(case, root)], output_flag
        )
    if timer:
        timer.cancel()
    return str(status), buffer.getvalue()


@contextlib.contextmanager
def ctrl_c_raises():
    """Ctrl-C raises KeyboardInterrupt, even when this script was started in the background
    (a shell starts background jobs with SIGINT ignored, and Python keeps it ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _default_ctrl_c():
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_api(case, root):
    with captured_output() as buffer:
        try:
            case.api(root)
        except Exception as error:  # noqa: BLE001 - the error is what the case reports
            return f"raises {type(error).__name__}", f"tfgrow: error: {error_line(error)}"
    return "returned", buffer.getvalue()


def run_subprocess(case, root):
    command = [sys.executable, "-m", f"launchers.{case.launcher}", *launcher_argv(case, root)]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    process = subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        preexec_fn=_default_ctrl_c,
    )
    if case.interrupt_after:
        time.sleep(case.interrupt_after)
        process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=600)
    return str(process.returncode), output


def run_case(case):
    """Runs one case in a fresh directory; returns its table row as a dict."""
    root = tempfile.mkdtemp(prefix="tfgrow_bad_input_")
    try:
        if case.setup:
            case.setup(root)
        before = snapshot(root)
        started = time.time()
        if case.launcher == "api":
            status, output = run_api(case, root)
        elif case.subprocess:
            status, output = run_subprocess(case, root)
        else:
            status, output = run_in_process(case, root)
        after = snapshot(root)
        if case.launcher == "api":  # the export case writes its model on purpose
            after = {path: value for path, value in after.items() if "exported" not in path}
    finally:
        shutil.rmtree(root, ignore_errors=True)
    written = sorted(path for path, value in after.items() if before.get(path) != value)
    home_run = os.path.expanduser("~/tfgrow_bad_input_run")
    if os.path.exists(home_run):  # the '~' case must not create it either
        written.append(home_run)
        shutil.rmtree(home_run, ignore_errors=True)
    row = {
        "group": case.group,
        "input": case.label,
        "launcher": case.launcher + (" (process)" if case.subprocess else ""),
        "exit": status,
        "written": ", ".join(written[:3]) + (" ..." if len(written) > 3 else ""),
        "traceback": "Traceback (most recent call last)" in output,
        "message": message_line(output)[:300],
        "seconds": round(time.time() - started, 1),
    }
    row["problems"] = problems(case, row, written)
    return row


def problems(case, row, written):
    """The rules a row breaks."""
    found = []
    if row["exit"] in ("0", "returned"):
        found.append("accepted")
    if row["traceback"]:
        found.append("traceback")
    if written and not case.expect_writes:
        found.append("wrote")
    if case.interrupt_after and row["exit"] != "130":
        found.append("interrupt not 130")
    return found


def print_table(rows):
    print("| # | class | input | launcher | exit | written | message (first line) |")
    print("|---|---|---|---|---|---|---|")
    for index, row in enumerate(rows, 1):
        message = row["message"].replace("|", "\\|")
        written = row["written"] or "nothing"
        print(
            f"| {index} | {row['group']} | `{row['input']}` | {row['launcher']} | {row['exit']} "
            f"| {written} | {message} |"
        )
    print_summary(rows)
    bad = [row for row in rows if row["problems"]]
    print(f"\n{len(rows)} cases, {len(bad)} breaking a rule", end="")
    print(": " + "; ".join(f"{r['input']}: {r['problems']}" for r in bad) if bad else "")


def print_summary(rows):
    """Cases per class with their exit statuses and how many broke a rule."""
    print("\n| class | cases | exit status | nothing written | breaking a rule |")
    print("|---|---|---|---|---|")
    for group in dict.fromkeys(row["group"] for row in rows):
        members = [row for row in rows if row["group"] == group]
        statuses = ", ".join(sorted({row["exit"] for row in members}))
        clean = sum(not row["written"] for row in members)
        broken = sum(bool(row["problems"]) for row in members)
        print(f"| {group} | {len(members)} | {statuses} | {clean} | {broken} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="Also write the rows to this JSON file.")
    parser.add_argument("--only", choices=("train", "export", "api"), help="One launcher's cases.")
    parser.add_argument("--match", default="", help="Only cases whose input contains this.")
    parser.add_argument("--rows_to", help=argparse.SUPPRESS)  # the export child's output
    args = parser.parse_args()
    os.chdir(REPO)
    sys.path.insert(0, REPO)
    from tfgrow import cli

    cli.quiet_startup()
    from benchmarks.bad_input_cases import cases

    rows = []
    selected = [case for case in cases(args.only) if args.match in case.label]
    for case in selected:
        if case.launcher == "export" and not args.only and not case.subprocess:
            continue  # run below, in one child process
        rows.append(run_case(case))
        print(f"{len(rows):3d} {rows[-1]['exit']:>16} {case.label}", file=sys.stderr, flush=True)
    if not args.only and any(c.launcher == "export" for c in selected):
        rows += _export_rows(args.match)
    if args.rows_to:
        with open(args.rows_to, "w") as f:
            json.dump(rows, f)
        return 0
    print_table(rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return 1 if any(row["problems"] for row in rows) else 0


def _export_rows(match):
    with tempfile.NamedTemporaryFile(suffix=".json") as rows_file:
        command = [sys.executable, "-m", "benchmarks.bad_inputs", "--only=export"]
        command += [f"--match={match}", f"--rows_to={rows_file.name}"]
        subprocess.run(command, cwd=REPO, check=True)
        with open(rows_file.name) as f:
            return json.load(f)


if __name__ == "__main__":
    sys.exit(main())
