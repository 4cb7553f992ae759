"""The package ships the stubs `make generate` writes to gen/python."""

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent


def test_vendored_stubs_match_gen_python():
    run = subprocess.run(
        [sys.executable, str(HERE.parent / "sync_stubs.py"), "--check"], capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr


def test_stubs_import_from_the_package():
    import corvid
    from corvid.v1 import inference_pb2

    assert pathlib.Path(inference_pb2.__file__).parent.parent == pathlib.Path(corvid.__file__).parent
