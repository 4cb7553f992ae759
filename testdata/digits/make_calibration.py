"""Write the calibration sets for static quantization of the digits models.

Run from the repository root:

    .venv/bin/python testdata/digits/make_calibration.py

It draws 128 rows, seeded, from the TRAINING split of models/train_digits.py
(never a held-out row: those score the quantized models, and calibrating on
them would flatter the result) and writes the same rows twice:

    testdata/digits/calibration.npz       for digits      input [128, 64]
    testdata/digits_cnn/calibration.npz   for digits_cnn  input [128, 1, 8, 8]

Layout: a numpy .npz (np.savez, uncompressed) holding one array per graph
input, keyed by the input's name, with the samples along the first axis and
the rest of the shape and the dtype exactly what the graph takes (float32,
raw 0..16 pixels). So a calibrator needs no per-model code: load the file,
slice every array along axis 0, feed the slices as the named inputs. No
labels are stored: calibration needs none, and an extra key would read as an
input.

The files are byte-for-byte reproducible: np.savez names each zip entry
without a timestamp, so zipfile stamps the fixed DOS epoch 1980-01-01, and
the rows come from a seeded generator. write() checks the stamp, so a numpy
that starts writing the clock fails here rather than in `make checkgenerate`.
"""

import pathlib
import sys
import zipfile

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(ROOT / "models"))
from train_digits import SEED, load_split  # noqa: E402

ROWS = 128
OUTPUTS = {
    ROOT / "testdata" / "digits" / "calibration.npz": (64,),
    ROOT / "testdata" / "digits_cnn" / "calibration.npz": (1, 8, 8),
}
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def write(path: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        np.savez(f, **arrays)
    with zipfile.ZipFile(path) as z:
        stamps = {info.date_time for info in z.infolist()}
    if stamps != {ZIP_EPOCH}:
        raise SystemExit(f"{path.name}: zip entries dated {stamps}, want {ZIP_EPOCH}")


def main() -> None:
    x_train, _, y_train, _ = load_split()
    rng = np.random.default_rng(SEED)
    # Sorted so that the file lists the rows in the training split's order.
    rows = np.sort(rng.choice(len(x_train), size=ROWS, replace=False))
    x = x_train[rows].astype(np.float32)
    counts = np.bincount(y_train[rows], minlength=10)
    print(f"{ROWS} training rows, per class: {counts.tolist()}")
    for path, shape in OUTPUTS.items():
        write(path, {"input": x.reshape((ROWS, *shape))})
        print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
