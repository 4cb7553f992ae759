"""Train and export the scikit-learn models of Corvid's model zoo.

Run from the repository root:

    .venv/bin/python testdata/zoo/make_sklearn.py

Five models, trained on scikit-learn's bundled datasets (no download) and
exported with skl2onnx the way a user would, into a model repository:

    testdata/zoo/models/<name>/1/model.onnx
    testdata/zoo/inputs/<name>.npy      64 rows of the dataset, float32 [64 features]

    sk-logreg         LogisticRegression, digits (10 classes)
                      -> LinearClassifier (SOFTMAX), Normalizer (L1)
    sk-mlp-pipeline   StandardScaler + MLPClassifier, wine (3 classes)
                      -> Scaler, MatMul, Add, Relu, Softmax, ArgMax, ArrayFeatureExtractor
    sk-forest         RandomForestClassifier, 10 trees of depth <= 6, breast
                      cancer (2 classes) -> TreeEnsembleClassifier
    sk-gbr            GradientBoostingRegressor, 40 trees of depth 3,
                      diabetes -> TreeEnsembleRegressor
    sk-linearsvc      LinearSVC, iris (3 classes) -> LinearClassifier (NONE)

Classifiers are exported without ZipMap (zipmap=False: Corvid serves
tensors, not sequences of maps) and with integer labels, so their outputs
are label int64 [N] and probabilities float32 [N, classes] (LinearSVC's are
decision scores). Every file is byte-for-byte reproducible with the pinned
packages of tools/requirements.txt, as models/train_digits.py's are: seeds
everywhere, one BLAS thread, fixed graph names.
"""

import pathlib

import numpy as np
import onnx
import onnxruntime as ort
from skl2onnx import convert_sklearn
from skl2onnx.common.data_types import FloatTensorType
from sklearn.datasets import load_breast_cancer, load_diabetes, load_digits, load_iris, load_wine
from sklearn.ensemble import GradientBoostingRegressor, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC
from threadpoolctl import threadpool_limits

SEED = 20240611
# Held-out rows written per model: two batches of 32 for the tests.
INPUT_ROWS = 64
# As in models/train_digits.py: pinned so the graphs do not change when
# skl2onnx's defaults move.
TARGET_OPSET = {"": 17, "ai.onnx.ml": 3}

ZOO = pathlib.Path(__file__).resolve().parent
MODELS = ZOO / "models"
INPUTS = ZOO / "inputs"


def models():
    """(name, estimator, dataset loader, is classifier) for each model."""
    return [
        ("sk-logreg", LogisticRegression(max_iter=2000, random_state=SEED), load_digits, True),
        (
            "sk-mlp-pipeline",
            make_pipeline(
                StandardScaler(),
                MLPClassifier(hidden_layer_sizes=(32,), max_iter=1000, random_state=SEED),
            ),
            load_wine,
            True,
        ),
        (
            "sk-forest",
            RandomForestClassifier(n_estimators=10, max_depth=6, random_state=SEED),
            load_breast_cancer,
            True,
        ),
        (
            "sk-gbr",
            GradientBoostingRegressor(n_estimators=40, max_depth=3, random_state=SEED),
            load_diabetes,
            False,
        ),
        ("sk-linearsvc", LinearSVC(random_state=SEED), load_iris, True),
    ]


def export(name, estimator, features, classifier):
    # LinearSVC has no probabilities, hence no ZipMap to turn off.
    options = {id(estimator): {"zipmap": False}} if classifier and not isinstance(estimator, LinearSVC) else None
    model = convert_sklearn(
        estimator,
        name=name,  # the graph name defaults to a fresh uuid4
        initial_types=[("input", FloatTensorType([None, features]))],
        options=options,
        target_opset=TARGET_OPSET,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def check_export(name, model, estimator, x, y, classifier):
    """Fail if ONNX Runtime and scikit-learn disagree on a held-out label
    (or, for the regressor, by more than float32 rounding)."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"input": x})
    want = estimator.predict(x)
    if classifier:
        mismatches = int((outputs[0] != want).sum())
        if mismatches:
            raise SystemExit(f"{name}: ONNX and scikit-learn disagree on {mismatches} labels")
        print(f"{name}: held-out accuracy {(outputs[0] == y).mean():.4f} ({len(y)} samples)")
    else:
        got = outputs[0].ravel()
        gap = float(np.abs(got - want).max())
        if gap > 1e-3 * float(np.abs(want).max()):
            raise SystemExit(f"{name}: ONNX and scikit-learn differ by {gap}")
        r2 = 1 - ((got - y) ** 2).sum() / ((y - y.mean()) ** 2).sum()
        print(f"{name}: held-out R^2 {r2:.4f} ({len(y)} samples); max |onnx - sklearn| = {gap:.2e}")


def main():
    for name, estimator, load, classifier in models():
        x, y = load(return_X_y=True)
        # Train on the float32 values the model will be served, so that
        # tree thresholds and the exported graph see the same numbers.
        x = x.astype(np.float32)
        x_train, x_test, y_train, y_test = train_test_split(
            x, y, test_size=0.25, random_state=SEED, stratify=y if classifier else None
        )
        # One BLAS thread: a threaded GEMM may sum in another order, which
        # changes the weights' last bits and so the files' bytes.
        with threadpool_limits(limits=1):
            estimator.fit(x_train, y_train)
        model = export(name, estimator, x.shape[1], classifier)
        check_export(name, model, estimator, x_test, y_test, classifier)

        path = MODELS / name / "1" / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(model.SerializeToString(deterministic=True))
        # Wine and iris have fewer held-out rows than INPUT_ROWS: the
        # inputs are drawn from the whole dataset, which is what a served
        # model sees anyway.
        rows = np.random.default_rng(SEED).choice(len(x), INPUT_ROWS, replace=False)
        INPUTS.mkdir(parents=True, exist_ok=True)
        np.save(INPUTS / f"{name}.npy", np.ascontiguousarray(x[rows]))
        print(f"wrote {path.relative_to(ZOO.parent.parent)} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
