"""corvid-py predict against a real server."""

import json
import subprocess
import sys

import numpy as np


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "corvid._cli", *args], capture_output=True, text=True, timeout=60)


def test_predict_from_npy(corvid_server, heldout, tmp_path):
    path = tmp_path / "rows.npy"
    np.save(path, heldout.inputs[:3])
    for spec in (str(path), f"input={path}"):
        run = _cli("predict", "digits", "--input", spec, "--target", corvid_server.target)
        assert run.returncode == 0, run.stderr
        out = json.loads(run.stdout)
        assert out["model_version"] == 1
        assert out["outputs"]["label"]["dtype"] == "int64"
        assert out["outputs"]["label"]["values"] == heldout.labels[:3].tolist()
        assert out["outputs"]["probabilities"]["shape"] == [3, 10]


def test_errors_exit_1(corvid_server, tmp_path):
    path = tmp_path / "bad.npy"
    np.save(path, np.zeros((1, 3), np.float32))
    run = _cli("predict", "digits", "--input", str(path), "--target", corvid_server.target)
    assert run.returncode == 1 and "INVALID_ARGUMENT" in run.stderr
