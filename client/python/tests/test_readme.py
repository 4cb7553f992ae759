"""The README's Python examples run as written, against a real server (only
the address is pointed at the test server) and print what they promise.

client/python/README.md's examples are checked line by line; any ```python
block of the repository's README.md that imports corvid must run too."""

import contextlib
import io
import pathlib
import re

import pytest

HERE = pathlib.Path(__file__).resolve().parents[1]
README = HERE / "README.md"
REPO_README = HERE.parents[1] / "README.md"


def _examples(path: pathlib.Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(), flags=re.S)


def _run(code: str, path: pathlib.Path, target: str) -> list[str]:
    assert code.count('"localhost:8500"') == 1, "each example names the server once"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code.replace('"localhost:8500"', repr(target)), str(path), "exec"), {"__name__": "__main__"})
    return out.getvalue().splitlines()


def test_package_readme_examples(corvid_server):
    examples = _examples(README)
    assert len(examples) == 2
    sync, aio = (_run(code, README, corvid_server.target) for code in examples)
    assert re.fullmatch(r"\[\d \d\]", sync[0])
    assert sync[1] == "(2, 10)"
    assert re.fullmatch(r"1 \S+", sync[2])
    assert re.fullmatch(r"0 \[\d\]", sync[3]) and re.fullmatch(r"1 \[\d\]", sync[4])
    assert sync[5] == 'model "no-such-model": not found MODEL_NOT_FOUND'
    assert re.fullmatch(r"\[\d\]", aio[0])


def test_repository_readme_examples(corvid_server):
    examples = [code for code in _examples(REPO_README) if "import corvid" in code]
    if not examples:
        pytest.skip("README.md has no Python SDK example yet")
    for code in examples:
        _run(code, REPO_README, corvid_server.target)
