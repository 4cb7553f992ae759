"""Write the .npz fixtures of server/npz's tests.

Run from the repository root:

    .venv/bin/python server/npz/testdata/make_fixtures.py

Every array but one is a formula of its flat index i that the Go tests
compute on their own (see npz_test.go), so a reader that misplaces,
byte-swaps or mis-types an element fails; "random" is drawn from a seeded
generator and its values are written beside it in random.json, as Python
floats, for the tests to compare exactly.

Files:
  dtypes.npz      stored, as np.savez writes: one array per supported dtype, a
                  scalar and an empty array
  compressed.npz  deflated, as np.savez_compressed writes: the same arrays
  orders.npz      Fortran-order and big-endian arrays
  versions.npz    the same array written as .npy format 1.0, 2.0 and 3.0
  unsupported_*.npz  one float16, complex, string, object, uint16 or record
                  array each
  random.npz, random.json
The zip entries carry the fixed DOS epoch, so the files are reproducible.
"""

import io
import json
import pathlib
import zipfile

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
SEED = 20261127
EPOCH = (1980, 1, 1, 0, 0, 0)


def formula(shape, dtype):
    """i*0.5 - 3 for floats, i*7 - 20 wrapped into the type for integers,
    i % 3 == 1 for bool, over the C-order flat index i."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.int64)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        v = (i * 0.5 - 3).astype(dt)
    elif dt.kind == "b":
        v = i % 3 == 1
    else:
        v = (i * 7 - 20).astype(dt)  # wraps for int8/uint8
    return v.reshape(shape)


def write_zip(path, members, compress=zipfile.ZIP_STORED):
    """members: name -> (array, .npy format version or None for the oldest
    that fits)."""
    with zipfile.ZipFile(path, "w", compression=compress) as z:
        for name, (array, version) in members.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, version=version, allow_pickle=True)
            info = zipfile.ZipInfo(name + ".npy", date_time=EPOCH)
            info.compress_type = compress
            z.writestr(info, buf.getvalue())


def main():
    arrays = {
        "f32": formula((2, 3), "<f4"),
        "f64": formula((3,), "<f8"),
        "i64": formula((2, 2), "<i8"),
        "i32": formula((4,), "<i4"),
        "u8": formula((5,), "u1"),
        "i8": formula((5,), "i1"),
        "b": formula((3,), "?"),
        "scalar": formula((), "<f4"),
        "empty": formula((0, 3), "<f4"),
    }
    write_zip(HERE / "dtypes.npz", {k: (v, None) for k, v in arrays.items()})
    write_zip(HERE / "compressed.npz", {k: (v, None) for k, v in arrays.items()}, zipfile.ZIP_DEFLATED)

    orders = {
        "fortran_f32": np.asfortranarray(formula((2, 3, 4), "<f4")),
        "fortran_i64": np.asfortranarray(formula((3, 2), "<i8")),
        "big_f32": formula((2, 3), ">f4"),
        "big_i32": formula((4,), ">i4"),
        "big_fortran_f64": np.asfortranarray(formula((3, 4), ">f8")),
    }
    assert orders["fortran_f32"].flags.f_contiguous and not orders["fortran_f32"].flags.c_contiguous
    write_zip(HERE / "orders.npz", {k: (v, None) for k, v in orders.items()})

    v = formula((2, 5), "<f4")
    write_zip(HERE / "versions.npz", {"v1": (v, (1, 0)), "v2": (v, (2, 0)), "v3": (v, (3, 0))})

    unsupported = {
        "f16": np.zeros((2,), "<f2"),
        "c64": np.zeros((2,), "<c8"),
        "str": np.array(["ab", "c"]),
        "obj": np.array([{"a": 1}, None], dtype=object),
        "u16": np.zeros((2,), "<u2"),
        "rec": np.zeros((2,), dtype=[("x", "<f4"), ("y", "<i4")]),
    }
    for k, a in unsupported.items():
        write_zip(HERE / f"unsupported_{k}.npz", {k: (a, None)})

    rng = np.random.default_rng(SEED)
    r = rng.standard_normal((4, 6)).astype(np.float32)
    write_zip(HERE / "random.npz", {"random": (r, None)})
    (HERE / "random.json").write_text(json.dumps({"shape": list(r.shape), "values": [float(x) for x in r.ravel()]}) + "\n")

    # np.load reads every fixture back as written (the unsupported ones too).
    for p in sorted(HERE.glob("*.npz")):
        with np.load(p, allow_pickle=True) as z:
            assert len(z.files) > 0, p


if __name__ == "__main__":
    main()
