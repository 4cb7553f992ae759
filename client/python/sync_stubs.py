"""Copy the generated corvid.v1 stubs from gen/python into the package.

The SDK ships the stubs as `corvid.v1`, the same module names `make generate`
writes to gen/python, so no import needs rewriting and code that imports
`corvid.v1` works the same with either copy. `make generate` runs this script
after protoc; `--check` exits 1 if the package's copy differs from gen/python
(the tests run that check too).

Usage: python client/python/sync_stubs.py [--check]
"""

import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
SOURCE = HERE.parents[1] / "gen" / "python" / "corvid" / "v1"
TARGET = HERE / "src" / "corvid" / "v1"
INIT = (
    '"""Generated corvid.v1 messages and gRPC stubs, copied from gen/python by\n'
    'client/python/sync_stubs.py (`make generate`). DO NOT EDIT."""\n'
)


def wanted() -> dict[str, bytes]:
    """File name -> content the package's copy must have."""
    files = {
        p.name: p.read_bytes()
        for p in sorted(SOURCE.iterdir())
        if p.suffix in (".py", ".pyi") and p.name != "__init__.py"
    }
    if not files:
        raise SystemExit(f"no generated stubs in {SOURCE}: run `make generate`")
    files["__init__.py"] = INIT.encode()
    return files


def differences() -> list[str]:
    """What differs between gen/python and the package's copy."""
    want = wanted()
    have = {p.name: p.read_bytes() for p in TARGET.iterdir() if p.is_file()} if TARGET.is_dir() else {}
    diffs = [f"missing {name}" for name in sorted(want.keys() - have.keys())]
    diffs += [f"extra {name}" for name in sorted(have.keys() - want.keys())]
    diffs += [f"differs {name}" for name in sorted(want.keys() & have.keys()) if want[name] != have[name]]
    return diffs


def sync() -> None:
    want = wanted()
    TARGET.mkdir(parents=True, exist_ok=True)
    for p in TARGET.iterdir():
        if p.is_file() and p.name not in want:
            p.unlink()
    for name, content in want.items():
        path = TARGET / name
        if not path.exists() or path.read_bytes() != content:
            path.write_bytes(content)


def main(argv: list[str]) -> int:
    if argv == ["--check"]:
        diffs = differences()
        for d in diffs:
            print(f"{TARGET.relative_to(HERE.parents[1])}: {d}", file=sys.stderr)
        if diffs:
            print("run `make generate` (or python client/python/sync_stubs.py)", file=sys.stderr)
        return 1 if diffs else 0
    if argv:
        print(__doc__, file=sys.stderr)
        return 2
    sync()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
