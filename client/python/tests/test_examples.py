"""examples/python runs as its docstring says, against a real server, and
prints what ONNX Runtime computes on the same model and data."""

import importlib.util
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import DIGITS_MODEL, REPO_ROOT, free_loopback_ports
from corvid.v1 import model_pb2, tensor_pb2

SCRIPT = REPO_ROOT / "examples" / "python" / "classify_digits.py"
ACCURACY = re.compile(r"accuracy (\d\.\d{3}) on (\d+) digits \(model digits version (\d+)\)")
PER_DIGIT = re.compile(r"  digit (\d): (\d+)/(\d+) correct")


def _run(*args: str, cwd: pathlib.Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def _onnxruntime_accuracy(inputs: np.ndarray, labels: np.ndarray) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(DIGITS_MODEL), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"input": inputs})
    return float((probabilities.argmax(axis=1) == labels).mean())


@pytest.mark.parametrize("batch", ["32", "7", "1000"])
def test_classify_digits_prints_accuracy(corvid_server, heldout, tmp_path, batch):
    # From another folder: the default --data is found from the script's path.
    run = _run("--target", corvid_server.target, "--batch", batch, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    match = ACCURACY.fullmatch(lines[0])
    assert match, run.stdout
    accuracy, count, version = float(match[1]), int(match[2]), int(match[3])
    assert (count, version) == (len(heldout.labels), 1)
    assert accuracy >= 0.9
    assert match[1] == f"{_onnxruntime_accuracy(heldout.inputs, heldout.labels):.3f}"

    digits = [PER_DIGIT.fullmatch(line) for line in lines[1:]]
    assert all(digits) and [int(m[1]) for m in digits] == list(range(10)), run.stdout
    assert sum(int(m[2]) for m in digits) == round(accuracy * count)
    assert [int(m[3]) for m in digits] == np.bincount(heldout.labels).tolist()


def test_unreachable_target_exits_1(tmp_path):
    (port,) = free_loopback_ports(1)  # closed again: nothing listens there
    target = f"127.0.0.1:{port}"
    run = _run("--target", target)
    assert run.returncode == 1
    assert run.stdout == ""
    assert target in run.stderr and "make run" in run.stderr, run.stderr


@pytest.mark.parametrize(
    "args, want",
    [
        (["--model", "no-such-model"], "MODEL_NOT_FOUND"),
        (["--data", "no-such-file.json"], "no-such-file.json"),
    ],
)
def test_errors_exit_1(corvid_server, args, want):
    run = _run("--target", corvid_server.target, *args)
    assert run.returncode == 1
    assert want in run.stderr and "Traceback" not in run.stderr, run.stderr


def test_choose_output():
    spec = importlib.util.spec_from_file_location("classify_digits", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def status(*outputs):
        return model_pb2.ModelVersionStatus(
            outputs=[tensor_pb2.TensorInfo(name=n, dtype=d, shape=s) for n, d, s in outputs]
        )

    probabilities = ("probabilities", tensor_pb2.DATA_TYPE_FP32, [-1, 10])
    label = ("label", tensor_pb2.DATA_TYPE_INT64, [-1])
    assert module.choose_output(status(probabilities, label)) == ("label", False)
    assert module.choose_output(status(probabilities)) == ("probabilities", True)
    with pytest.raises(ValueError, match="want a label"):
        module.choose_output(status(("y", tensor_pb2.DATA_TYPE_FP32, [-1, 2, 2])))
