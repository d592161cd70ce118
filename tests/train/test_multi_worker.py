"""MultiWorkerMirroredStrategy: two worker processes on localhost train one tiny run together.

Each process gets its TF_CONFIG; they must agree on every step (collective all-reduce of
gradients and batch-norm statistics, the same mask draws), so they end with identical
architectures. Only the chief keeps checkpoints and writes `model_dir`. The run is the main job's
(the Keras ResNet-20 grown by `tfgrow.grow`, `tfgrow.grown_model`) under tiny.gin.
"""

import json
import os
import socket
import subprocess
import sys

import pytest

from tests.fixtures.processes import REPO


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("localhost", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_two_workers_train_together_and_agree(tmp_path):
    experiment = "fashion_mnist_resnet20_grow.gin"
    model_dir = str(tmp_path / "run")
    workers = [f"localhost:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        env["TF_CONFIG"] = json.dumps(
            {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        )
        command = [
            sys.executable,
            "-m",
            "launchers.train",
            f"--gin_file=configs/experiments/{experiment}",
            "--gin_file=configs/tiny.gin",
            "--gin_bindings=tfgrow.make_strategy.name = 'multi_worker'",
            "--gin_bindings=tfgrow.train.max_train_examples = 256",
            f"--model_dir={model_dir}",
        ]
        log = open(tmp_path / f"worker{index}.log", "w")
        processes.append(
            (subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=log), log)
        )
    for process, log in processes:
        try:
            code = process.wait(timeout=600)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
        if code != 0:
            logs = "\n".join((tmp_path / f"worker{i}.log").read_text()[-3000:] for i in range(2))
            pytest.fail(f"worker exited with {code}:\n{logs}")

    with open(os.path.join(model_dir, "summary.json")) as f:
        chief = json.load(f)
    with open(os.path.join(model_dir, "workers", "worker_1", "summary.json")) as f:
        other = json.load(f)
    assert chief["num_replicas"] == other["num_replicas"] == 2
    assert chief["architecture"] == other["architecture"]
    assert chief["blocks"] == other["blocks"]
    assert chief["steps"] == other["steps"] == 256 // 32
    assert chief["eval_accuracy"] == pytest.approx(other["eval_accuracy"])
    assert chief["train_flops"] == other["train_flops"]
    # One checkpoint (one epoch), kept by the chief only.
    checkpoints = os.listdir(os.path.join(model_dir, "checkpoints"))
    assert sum(name.endswith(".index") for name in checkpoints) == 1
    assert not os.path.exists(os.path.join(model_dir, "workers", "worker_1", "checkpoints"))
