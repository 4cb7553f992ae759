#!/usr/bin/env python3
"""Build conformance cases for the ai.onnx.ml operators, outputs by ONNX Runtime.

Each case is a one-node ONNX model made with onnx.helper (or a small
scikit-learn model exported by skl2onnx), with inputs from a seeded
generator, laid out like ONNX's backend test data:

    testdata/mlops/<case>/model.onnx
    testdata/mlops/<case>/test_data_set_<k>/input_<i>.pb    (TensorProto, named)
    testdata/mlops/<case>/test_data_set_<k>/output_<i>.pb

server/runtime's TestMLConformance runs every case through Compile and Run
and compares with ONNX Runtime: labels exactly, scores within 1e-5 relative.
The cases cover every attribute value of LinearClassifier, LinearRegressor,
TreeEnsembleClassifier, TreeEnsembleRegressor, Scaler, Normalizer and
Binarizer that ONNX Runtime runs: node modes, missing-value tracking,
aggregate functions, post transforms, base values, the *_as_tensor double
attributes, the binary classifier cases, and the input types.

Run from the repository root, with the project virtualenv:

    .venv/bin/python testdata/mlops/make_ml_ops.py

The output is deterministic: rerunning it rewrites the same bytes.
"""

import os
import shutil
import warnings
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
IR_VERSION = 8
ML = "ai.onnx.ml"

F32, F64, I32, I64 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT32, TensorProto.INT64
NP = {F32: np.float32, F64: np.float64, I32: np.int32, I64: np.int64}

# Every case runs at these batch sizes: 1 and 32 are compiled buckets, 5
# is padded up to 8.
BATCHES = (1, 5, 32)
POST_TRANSFORMS = ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO", "PROBIT")
MODES = ("BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ")

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def rng_for(name):
    # One generator per case, seeded by its name, so adding a case does not
    # change the data of the others.
    return np.random.default_rng(zlib.crc32(name.encode()))


def model(node, x_type, x_shape, outputs, ml_opset=3):
    """A one-node model reading X; outputs are (name, elem type, shape)."""
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", x_type, x_shape)],
        [helper.make_tensor_value_info(n, t, s) for n, t, s in outputs],
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ML, ml_opset)],
        producer_name="corvid-make-ml-ops",
    )
    m.ir_version = IR_VERSION
    onnx.checker.check_model(m, full_check=True)
    return m


def write(name, m, feeds_list):
    """Write the model and one test data set per feeds dict."""
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    data = m.SerializeToString(deterministic=True)
    with open(os.path.join(d, "model.onnx"), "wb") as f:
        f.write(data)
    sess = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    out_names = [o.name for o in sess.get_outputs()]
    for k, feeds in enumerate(feeds_list):
        sd = os.path.join(d, f"test_data_set_{k}")
        os.makedirs(sd)
        for i, (n, a) in enumerate(feeds.items()):
            with open(os.path.join(sd, f"input_{i}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(a, n).SerializeToString())
        for i, (n, a) in enumerate(zip(out_names, sess.run(None, feeds))):
            with open(os.path.join(sd, f"output_{i}.pb"), "wb") as f:
                f.write(numpy_helper.from_array(np.asarray(a), n).SerializeToString())


def batches(rng, features, dtype=F32, lo=-2.0, hi=2.0, nan=0.0, grid=None):
    """One feeds dict per batch size: uniform values, or drawn from grid
    (so that equality tests hit), with a fraction nan of NaNs."""
    out = []
    for n in BATCHES:
        if grid is not None:
            x = rng.choice(np.asarray(grid, np.float64), size=(n, features))
        else:
            x = rng.uniform(lo, hi, size=(n, features))
        if nan:
            x[rng.random(x.shape) < nan] = np.nan
        out.append({"X": x.astype(NP[dtype])})
    return out


# --- LinearClassifier and LinearRegressor --------------------------------


def linear_classifier(name, rng, classes, labels, post, features=4, dtype=F32, scale=1.0):
    node = helper.make_node(
        "LinearClassifier", ["X"], ["Y", "Z"], domain=ML,
        coefficients=(rng.uniform(-1, 1, classes * features) * scale).astype(np.float32).tolist(),
        intercepts=(rng.uniform(-1, 1, classes) * scale).astype(np.float32).tolist(),
        classlabels_ints=labels,
        post_transform=post,
        multi_class=1 if classes > 2 else 0,
    )
    cols = 2 if classes == 1 else classes
    return model(node, dtype, ["N", features], [("Y", I64, ["N"]), ("Z", F32, ["N", cols])])


@case
def linear_classifier_cases():
    for post in POST_TRANSFORMS:
        name = f"linear_classifier_{post.lower()}"
        rng = rng_for(name)
        # PROBIT wants scores in (0, 1): small coefficients, inputs in (0, 1).
        small = post == "PROBIT"
        m = linear_classifier(name, rng, 3, [10, 20, 30], post, scale=0.1 if small else 1.0)
        write(name, m, batches(rng, 4, lo=0.0 if small else -2.0, hi=1.0 if small else 2.0))
    for post in ("NONE", "LOGISTIC", "SOFTMAX", "SOFTMAX_ZERO"):
        # One row of coefficients, two labels: ONNX Runtime adds the
        # negative class's column.
        name = f"linear_classifier_binary_{post.lower()}"
        rng = rng_for(name)
        write(name, linear_classifier(name, rng, 1, [0, 5], post), batches(rng, 4))
    for dtype, tag in ((F64, "double"), (I64, "int64"), (I32, "int32")):
        name = f"linear_classifier_{tag}"
        rng = rng_for(name)
        m = linear_classifier(name, rng, 3, [0, 1, 2], "SOFTMAX", dtype=dtype)
        write(name, m, batches(rng, 4, dtype=dtype, lo=-5, hi=5))
    # (No case without intercepts: ONNX Runtime and ONNX's shape inference
    # count the classes by the intercepts, so the model has no reference.)
    # A single sample [F], not a batch.
    name = "linear_classifier_1d"
    rng = rng_for(name)
    node = helper.make_node(
        "LinearClassifier", ["X"], ["Y", "Z"], domain=ML,
        coefficients=rng.uniform(-1, 1, 12).astype(np.float32).tolist(),
        intercepts=[0.1, -0.2, 0.3], classlabels_ints=[1, 2, 3], post_transform="SOFTMAX",
    )
    m = model(node, F32, [4], [("Y", I64, [1]), ("Z", F32, [1, 3])])
    write(name, m, [{"X": rng.uniform(-2, 2, 4).astype(np.float32)}])


@case
def linear_regressor_cases():
    for targets in (1, 3):
        for post in POST_TRANSFORMS:
            if targets == 1 and post not in ("NONE", "LOGISTIC", "PROBIT"):
                continue
            name = f"linear_regressor_{targets}_{post.lower()}"
            rng = rng_for(name)
            small = post == "PROBIT"
            scale = 0.1 if small else 1.0
            node = helper.make_node(
                "LinearRegressor", ["X"], ["Y"], domain=ML, targets=targets, post_transform=post,
                coefficients=(rng.uniform(-1, 1, targets * 4) * scale).astype(np.float32).tolist(),
                intercepts=(rng.uniform(0.2, 0.5, targets) * scale).astype(np.float32).tolist(),
            )
            m = model(node, F32, ["N", 4], [("Y", F32, ["N", targets])])
            write(name, m, batches(rng, 4, lo=0.0 if small else -2.0, hi=1.0 if small else 2.0))
    name = "linear_regressor_no_intercepts"
    rng = rng_for(name)
    node = helper.make_node(
        "LinearRegressor", ["X"], ["Y"], domain=ML, targets=2,
        coefficients=rng.uniform(-1, 1, 8).astype(np.float32).tolist(),
    )
    write(name, model(node, F32, ["N", 4], [("Y", F32, ["N", 2])]), batches(rng, 4))


# --- tree ensembles ---------------------------------------------------------


class Forest:
    """Random trees in the attribute layout of the tree ensembles.

    Node ids are shuffled and nodes are listed in a shuffled order (each
    tree's root first, as exporters write it), so that nothing depends on
    ids being positions. Each leaf gets weights for a random non-empty
    subset of the targets (or classes), so some targets get none in some
    leaves: MIN, MAX and the classifier's rules must tell "no weight" from
    zero.
    """

    def __init__(self, rng, trees, depth, features, targets, modes=("BRANCH_LEQ",), grid=None,
                 missing=0.0, weights=(-1.0, 1.0), all_targets=False, one_target=None):
        self.nodes = {k: [] for k in ("treeids", "nodeids", "featureids", "modes", "values",
                                      "truenodeids", "falsenodeids", "missing_value_tracks_true")}
        self.w = {k: [] for k in ("treeids", "nodeids", "ids", "weights")}
        tree_ids = rng.permutation(trees * 3)[:trees]
        for t in tree_ids:
            count = 2 ** (depth + 1) - 1  # a full tree, heap-numbered
            ids = rng.permutation(count)  # ONNX Runtime wants ids below the node count
            order = [0] + list(rng.permutation(np.arange(1, count)))
            for i in order:
                self.nodes["treeids"].append(int(t))
                self.nodes["nodeids"].append(int(ids[i]))
                leaf = 2 * i + 1 >= count
                self.nodes["modes"].append("LEAF" if leaf else str(rng.choice(modes)))
                self.nodes["featureids"].append(0 if leaf else int(rng.integers(features)))
                if leaf or grid is None:
                    value = 0.0 if leaf else float(rng.uniform(-1.5, 1.5))
                else:
                    value = float(rng.choice(grid))
                self.nodes["values"].append(value)
                self.nodes["truenodeids"].append(0 if leaf else int(ids[2 * i + 1]))
                self.nodes["falsenodeids"].append(0 if leaf else int(ids[2 * i + 2]))
                self.nodes["missing_value_tracks_true"].append(int(not leaf and rng.random() < missing))
                if not leaf:
                    continue
                if one_target is not None:
                    chosen = [one_target]
                elif all_targets:
                    chosen = range(targets)
                else:
                    chosen = rng.permutation(targets)[: rng.integers(1, targets + 1)]
                for target in chosen:
                    self.w["treeids"].append(int(t))
                    self.w["nodeids"].append(int(ids[i]))
                    self.w["ids"].append(int(target))
                    self.w["weights"].append(float(rng.uniform(*weights)))

    def attrs(self, prefix, double=False):
        """The node's attributes; prefix is "class" or "target"."""
        a = {f"nodes_{k}": v for k, v in self.nodes.items()}
        a.update({f"{prefix}_{k}": v for k, v in self.w.items()})
        if double:
            a["nodes_values_as_tensor"] = helper.make_tensor("", TensorProto.DOUBLE, [len(a["nodes_values"])], a.pop("nodes_values"))
            weights = a.pop(f"{prefix}_weights")
            a[f"{prefix}_weights_as_tensor"] = helper.make_tensor("", TensorProto.DOUBLE, [len(weights)], weights)
        return a


def regressor(forest, targets, dtype=F32, double=False, base=None, **attrs):
    a = forest.attrs("target", double)
    if base is not None:
        if double:
            a["base_values_as_tensor"] = helper.make_tensor("", TensorProto.DOUBLE, [len(base)], base)
        else:
            a["base_values"] = base
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain=ML, n_targets=targets, **a, **attrs)
    return model(node, dtype, ["N", 4], [("Y", F32, ["N", targets])])


@case
def tree_regressor_cases():
    for agg in ("SUM", "AVERAGE", "MIN", "MAX"):
        for targets in (1, 3):
            name = f"tree_regressor_{agg.lower()}_{targets}"
            rng = rng_for(name)
            forest = Forest(rng, trees=4, depth=3, features=4, targets=targets)
            base = rng.uniform(-1, 1, targets).astype(np.float32).tolist() if targets == 3 else [0.25]
            write(name, regressor(forest, targets, base=base, aggregate_function=agg), batches(rng, 4))
    for post in POST_TRANSFORMS:
        name = f"tree_regressor_post_{post.lower()}"
        rng = rng_for(name)
        forest = Forest(rng, trees=3, depth=2, features=4, targets=3, weights=(0.0, 0.3))
        write(name, regressor(forest, 3, post_transform=post), batches(rng, 4))
    for post in ("LOGISTIC", "PROBIT"):
        # One target: ONNX Runtime applies PROBIT only.
        name = f"tree_regressor_1_{post.lower()}"
        rng = rng_for(name)
        forest = Forest(rng, trees=3, depth=2, features=4, targets=1, weights=(0.0, 0.3))
        write(name, regressor(forest, 1, post_transform=post), batches(rng, 4))
    for mode in MODES:
        # Values on a grid, so that equal features and thresholds occur.
        name = f"tree_regressor_{mode.lower()}"
        rng = rng_for(name)
        grid = (-1.0, 0.0, 0.5, 1.0)
        forest = Forest(rng, trees=3, depth=3, features=4, targets=2, modes=(mode,), grid=grid)
        write(name, regressor(forest, 2), batches(rng, 4, grid=grid))
    name = "tree_regressor_mixed_modes"
    rng = rng_for(name)
    grid = (-1.0, 0.0, 0.5, 1.0)
    forest = Forest(rng, trees=5, depth=3, features=4, targets=2, modes=MODES, grid=grid)
    write(name, regressor(forest, 2), batches(rng, 4, grid=grid))
    for mode in ("BRANCH_LEQ", "BRANCH_GT"):
        # NaN features: half the nodes send them down the true branch.
        name = f"tree_regressor_missing_{mode.lower()}"
        rng = rng_for(name)
        forest = Forest(rng, trees=4, depth=3, features=4, targets=1, modes=(mode,), missing=0.5)
        write(name, regressor(forest, 1), batches(rng, 4, nan=0.3))
    name = "tree_regressor_double"
    rng = rng_for(name)
    forest = Forest(rng, trees=4, depth=3, features=4, targets=2)
    write(name, regressor(forest, 2, dtype=F64, double=True, base=[0.5, -0.5]), batches(rng, 4, dtype=F64))
    # A FLOAT tensor in a *_as_tensor attribute, with float input.
    name = "tree_regressor_float_tensor"
    rng = rng_for(name)
    forest = Forest(rng, trees=2, depth=2, features=4, targets=1)
    a = forest.attrs("target")
    a["nodes_values_as_tensor"] = helper.make_tensor("", F32, [len(a["nodes_values"])], a.pop("nodes_values"))
    node = helper.make_node("TreeEnsembleRegressor", ["X"], ["Y"], domain=ML, n_targets=1, **a)
    write(name, model(node, F32, ["N", 4], [("Y", F32, ["N", 1])]), batches(rng, 4))


def classifier(forest, labels, dtype=F32, double=False, base=None, **attrs):
    a = forest.attrs("class", double)
    if base is not None:
        if double:
            a["base_values_as_tensor"] = helper.make_tensor("", TensorProto.DOUBLE, [len(base)], base)
        else:
            a["base_values"] = base
    node = helper.make_node("TreeEnsembleClassifier", ["X"], ["Y", "Z"], domain=ML, classlabels_int64s=labels, **a, **attrs)
    return model(node, dtype, ["N", 4], [("Y", I64, ["N"]), ("Z", F32, ["N", len(labels)])])


@case
def tree_classifier_cases():
    for post in POST_TRANSFORMS:
        for base in (None, [0.1, -0.2, 0.3]):
            name = f"tree_classifier_{post.lower()}" + ("_base" if base else "")
            rng = rng_for(name)
            weights = (0.0, 0.3) if post == "PROBIT" else (-1.0, 1.0)
            forest = Forest(rng, trees=4, depth=3, features=4, targets=3, weights=weights)
            write(name, classifier(forest, [3, 7, 11], base=base, post_transform=post), batches(rng, 4))
    # Two classes: every combination of which classes the weights go to,
    # their signs, and zero, one or two base values.
    binary = {
        "prob0": dict(one_target=0, weights=(0.0, 1.0)),   # random forest: P(class 1) as class 0's weight
        "prob1": dict(one_target=1, weights=(0.0, 1.0)),
        "margin0": dict(one_target=0, weights=(-1.0, 1.0)),  # gradient boosting: a margin
        "margin1": dict(one_target=1, weights=(-1.0, 1.0)),
        "both": dict(all_targets=True, weights=(0.0, 1.0)),  # binary as multiclass
        "some": dict(weights=(-1.0, 1.0)),                   # leaves weigh one class or both
    }
    for kind, opts in binary.items():
        for base in (None, [0.2], [0.2, -0.1]):
            for post in ("NONE", "LOGISTIC", "SOFTMAX"):
                name = f"tree_classifier_binary_{kind}_{len(base or [])}_{post.lower()}"
                rng = rng_for(name)
                forest = Forest(rng, trees=3, depth=2, features=4, targets=2, **opts)
                write(name, classifier(forest, [0, 1], base=base, post_transform=post), batches(rng, 4))
    for dtype, tag in ((I64, "int64"), (I32, "int32")):
        name = f"tree_classifier_{tag}"
        rng = rng_for(name)
        forest = Forest(rng, trees=3, depth=3, features=4, targets=3, grid=(-1.5, -0.5, 0.5, 1.5))
        write(name, classifier(forest, [0, 1, 2], dtype=dtype), batches(rng, 4, dtype=dtype, grid=(-2, -1, 0, 1, 2)))
    name = "tree_classifier_double"
    rng = rng_for(name)
    forest = Forest(rng, trees=3, depth=3, features=4, targets=3)
    write(name, classifier(forest, [0, 1, 2], dtype=F64, double=True, base=[0.1, 0.2, 0.3], post_transform="SOFTMAX"),
          batches(rng, 4, dtype=F64))
    name = "tree_classifier_missing"
    rng = rng_for(name)
    forest = Forest(rng, trees=3, depth=3, features=4, targets=3, modes=MODES[:4], missing=0.5)
    write(name, classifier(forest, [0, 1, 2]), batches(rng, 4, nan=0.3))


# --- Scaler, Normalizer, Binarizer ------------------------------------------


@case
def scaler_cases():
    for dtype, tag in ((F32, "float"), (F64, "double"), (I64, "int64"), (I32, "int32")):
        name = f"scaler_{tag}"
        rng = rng_for(name)
        node = helper.make_node(
            "Scaler", ["X"], ["Y"], domain=ML,
            offset=rng.uniform(-1, 1, 4).astype(np.float32).tolist(),
            scale=rng.uniform(0.5, 2, 4).astype(np.float32).tolist(),
        )
        write(name, model(node, dtype, ["N", 4], [("Y", F32, ["N", 4])]), batches(rng, 4, dtype=dtype, lo=-9, hi=9))
    name = "scaler_scalar"
    rng = rng_for(name)
    node = helper.make_node("Scaler", ["X"], ["Y"], domain=ML, offset=[0.5], scale=[3.0])
    write(name, model(node, F32, ["N", 4], [("Y", F32, ["N", 4])]), batches(rng, 4))
    name = "scaler_1d"
    rng = rng_for(name)
    node = helper.make_node("Scaler", ["X"], ["Y"], domain=ML, offset=[0.5, 1, 1.5], scale=[3.0, 2, 1])
    write(name, model(node, F32, [3], [("Y", F32, [3])]), [{"X": rng.uniform(-2, 2, 3).astype(np.float32)}])


@case
def normalizer_cases():
    for norm in ("MAX", "L1", "L2"):
        for dtype, tag in ((F32, "float"), (F64, "double"), (I64, "int64"), (I32, "int32")):
            name = f"normalizer_{norm.lower()}_{tag}"
            rng = rng_for(name)
            node = helper.make_node("Normalizer", ["X"], ["Y"], domain=ML, norm=norm)
            feeds = batches(rng, 5, dtype=dtype, lo=-9, hi=9)
            feeds[-1]["X"][3] = 0  # a zero row: its norm is 0
            write(name, model(node, dtype, ["N", 5], [("Y", F32, ["N", 5])]), feeds)
    name = "normalizer_l2_1d"
    rng = rng_for(name)
    node = helper.make_node("Normalizer", ["X"], ["Y"], domain=ML, norm="L2")
    write(name, model(node, F32, [5], [("Y", F32, [5])]), [{"X": rng.uniform(-2, 2, 5).astype(np.float32)}])


@case
def binarizer_cases():
    for threshold in (None, 0.5):
        name = "binarizer_default" if threshold is None else "binarizer_threshold"
        rng = rng_for(name)
        attrs = {} if threshold is None else {"threshold": threshold}
        node = helper.make_node("Binarizer", ["X"], ["Y"], domain=ML, **attrs)
        feeds = batches(rng, 4, grid=(-1.0, 0.0, 0.25, 0.5, 0.75, 1.0))
        write(name, model(node, F32, ["N", 4], [("Y", F32, ["N", 4])]), feeds)


# --- scikit-learn exports ---------------------------------------------------


@case
def sklearn_cases():
    """Small models as skl2onnx exports them (no ZipMap), on bundled data."""
    from skl2onnx import to_onnx
    from sklearn.datasets import load_breast_cancer, load_iris
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.svm import LinearSVC
    from threadpoolctl import threadpool_limits

    iris_x, iris_y = load_iris(return_X_y=True)
    cancer_x, cancer_y = load_breast_cancer(return_X_y=True)
    models = {
        "sklearn_forest_iris": (RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0), iris_x, iris_y),
        "sklearn_forest_cancer": (RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0), cancer_x, cancer_y),
        "sklearn_gbc_iris": (GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0), iris_x, iris_y),
        "sklearn_gbc_cancer": (GradientBoostingClassifier(n_estimators=4, max_depth=2, random_state=0), cancer_x, cancer_y),
        "sklearn_logreg_cancer": (LogisticRegression(max_iter=5000), cancer_x, cancer_y),
        "sklearn_linearsvc_cancer": (LinearSVC(random_state=0), cancer_x, cancer_y),
    }
    for name, (clf, x, y) in models.items():
        x = x.astype(np.float32)
        # One thread for BLAS and OpenMP: threaded sums change the last
        # bits of the fitted values, and so the files' bytes.
        with warnings.catch_warnings(), threadpool_limits(limits=1):
            warnings.simplefilter("ignore")  # convergence: the model only needs to exist
            clf.fit(x, y)
        options = {} if isinstance(clf, LinearSVC) else {"zipmap": False}
        m = to_onnx(clf, x[:1], options=options, target_opset={"": 17, ML: 3})
        m.producer_name = "corvid-make-ml-ops"
        m.graph.name = name  # skl2onnx names graphs with a fresh uuid
        rng = rng_for(name)
        write(name, m, [{"X": x[rng.choice(len(x), n, replace=False)]} for n in BATCHES])


def main():
    for path in os.listdir(HERE):
        if os.path.isdir(os.path.join(HERE, path)):
            shutil.rmtree(os.path.join(HERE, path))
    for fn in CASES:
        fn()
    total = 0
    for root, _, files in os.walk(HERE):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    cases = sum(os.path.isdir(os.path.join(HERE, p)) for p in os.listdir(HERE))
    print(f"wrote {cases} cases, {total} bytes")


if __name__ == "__main__":
    main()
