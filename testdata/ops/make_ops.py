#!/usr/bin/env python3
"""Build Corvid's op conformance cases and their expected outputs.

Each case is a small ONNX model made with onnx.helper (one operator, or a
short graph such as an MLP), with inputs drawn from a seeded generator and
outputs computed by ONNX Runtime, laid out like ONNX's own backend test data:

    testdata/ops/<case>/model.onnx
    testdata/ops/<case>/test_data_set_<k>/input_<i>.pb   (TensorProto, named)
    testdata/ops/<case>/test_data_set_<k>/output_<i>.pb

server/runtime's tests run every case through Compile and Run and compare
with ONNX Runtime (max abs diff 1e-5 for floats, exact for integers).

Run from the repository root, with the project virtualenv:

    .venv/bin/python testdata/ops/make_ops.py

The output is deterministic: rerunning it rewrites the same bytes.
"""

import os
import shutil
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OPSET = 17
IR_VERSION = 8  # old enough for every ONNX reader, new enough for opset 17

F32 = TensorProto.FLOAT
F64 = TensorProto.DOUBLE
I32 = TensorProto.INT32
I64 = TensorProto.INT64
BOOL = TensorProto.BOOL

NP = {F32: np.float32, F64: np.float64, I32: np.int32, I64: np.int64, BOOL: np.bool_}

CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def rng_for(name):
    # One generator per case, seeded by its name, so adding a case does not
    # change the data of the others.
    return np.random.default_rng(zlib.crc32(name.encode()))


def rand(rng, dtype, shape, lo=-2.0, hi=2.0):
    if dtype in (F32, F64):
        return rng.uniform(lo, hi, size=shape).astype(NP[dtype])
    if dtype == BOOL:
        return rng.integers(0, 2, size=shape).astype(np.bool_)
    return rng.integers(int(lo), int(hi) + 1, size=shape).astype(NP[dtype])


def vi(name, dtype, shape):
    return helper.make_tensor_value_info(name, dtype, shape)


def model(nodes, inputs, outputs, inits=(), opset=OPSET, ml=False):
    imports = [helper.make_opsetid("", opset)]
    if ml:
        imports.append(helper.make_opsetid("ai.onnx.ml", 1))
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(inits))
    m = helper.make_model(graph, opset_imports=imports, producer_name="corvid-make-ops")
    m.ir_version = IR_VERSION
    # Outputs declared without a shape get the one ONNX infers.
    inferred = {o.name: o for o in onnx.shape_inference.infer_shapes(m, strict_mode=True).graph.output}
    for o in m.graph.output:
        if not o.type.tensor_type.HasField("shape") or o.type.tensor_type.elem_type == TensorProto.UNDEFINED:
            o.CopyFrom(inferred[o.name])
    onnx.checker.check_model(m, full_check=True)
    return m


def init(name, array):
    return numpy_helper.from_array(array, name)


def write(name, m, feeds_list):
    """Write the model and one test data set per feeds dict."""
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    data = m.SerializeToString()
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


# --- elementwise arithmetic, with broadcasting --------------------------


def binary(name, op, dtype, sa, sb, lo=-2.0, hi=2.0, b_lo=None, b_hi=None, const_b=False):
    rng = rng_for(name)
    a = rand(rng, dtype, sa, lo, hi)
    b = rand(rng, dtype, sb, lo if b_lo is None else b_lo, hi if b_hi is None else b_hi)
    out_shape = list(np.broadcast_shapes(tuple(sa), tuple(sb)))
    inputs, inits, feeds = [vi("a", dtype, sa)], [], {"a": a}
    if const_b:
        inits.append(init("b", b))
    else:
        inputs.append(vi("b", dtype, sb))
        feeds["b"] = b
    m = model([helper.make_node(op, ["a", "b"], ["y"])], inputs, [vi("y", dtype, out_shape)], inits)
    write(name, m, [feeds])


@case
def arithmetic():
    binary("add_same", "Add", F32, [3, 4], [3, 4])
    binary("add_row", "Add", F32, [3, 4], [4], const_b=True)
    binary("add_col_row", "Add", F32, [3, 1], [1, 4])
    binary("add_3d", "Add", F32, [2, 3, 4], [3, 1])
    binary("sub_scalar", "Sub", F32, [3, 4], [], const_b=True)
    binary("sub_fp64", "Sub", F64, [2, 3], [2, 1])
    binary("mul_bcast_both", "Mul", F32, [2, 1, 4], [3, 1])
    binary("div_fp32", "Div", F32, [3, 4], [4], b_lo=0.5, b_hi=2.0)
    binary("add_int64", "Add", I64, [3, 4], [4], lo=-100, hi=100)
    binary("mul_int32", "Mul", I32, [2, 3], [2, 3], lo=-50, hi=50)
    # Integer division truncates toward zero; divisors avoid 0.
    binary("div_int64", "Div", I64, [4, 5], [5], lo=-50, hi=50, b_lo=1, b_hi=7)


# --- unary ---------------------------------------------------------------


def unary(name, op, dtype, shape, **attrs):
    rng = rng_for(name)
    x = rand(rng, dtype, shape, -4, 4)
    m = model([helper.make_node(op, ["x"], ["y"], **attrs)], [vi("x", dtype, shape)], [vi("y", TensorProto.UNDEFINED, None)])
    write(name, m, [{"x": x}])


@case
def unaries():
    unary("relu_fp32", "Relu", F32, [3, 4, 5])
    unary("relu_fp64", "Relu", F64, [7])
    unary("relu_int32", "Relu", I32, [3, 4])
    unary("sigmoid_fp32", "Sigmoid", F32, [3, 5])
    unary("sigmoid_fp64", "Sigmoid", F64, [4])
    unary("tanh_fp32", "Tanh", F32, [2, 3, 4])
    unary("identity_int64", "Identity", I64, [2, 3])


@case
def softmax():
    unary("softmax_default", "Softmax", F32, [3, 5])
    unary("softmax_axis1_3d", "Softmax", F32, [2, 3, 4], axis=1)
    unary("softmax_axis0", "Softmax", F64, [3, 4], axis=0)
    # Opset 11 coerces the input to 2-D at axis: normalised over axes 1..end.
    rng = rng_for("softmax_opset11")
    x = rand(rng, F32, [2, 3, 4], -4, 4)
    m = model([helper.make_node("Softmax", ["x"], ["y"], axis=1)], [vi("x", F32, [2, 3, 4])], [vi("y", F32, [2, 3, 4])], opset=11)
    write("softmax_opset11", m, [{"x": x}])


@case
def shapes():
    unary("flatten_default", "Flatten", F32, [2, 3, 4])
    unary("flatten_axis0", "Flatten", F32, [2, 3, 4], axis=0)
    unary("flatten_neg", "Flatten", I64, [2, 3, 4], axis=-1)

    def reshape(name, in_shape, spec, from_constant=False):
        rng = rng_for(name)
        x = rand(rng, F32, in_shape)
        s = np.array(spec, dtype=np.int64)
        nodes, inits = [], []
        if from_constant:
            nodes.append(helper.make_node("Constant", [], ["shape"], value=numpy_helper.from_array(s)))
        else:
            inits.append(init("shape", s))
        nodes.append(helper.make_node("Reshape", ["x", "shape"], ["y"]))
        m = model(nodes, [vi("x", F32, in_shape)], [vi("y", F32, None)], inits)
        write(name, m, [{"x": x}])

    reshape("reshape_minus1", [2, 3, 4], [-1, 4])
    reshape("reshape_zero", [2, 3, 4], [0, -1])
    reshape("reshape_constant", [2, 3, 4], [4, 3, 2], from_constant=True)


@case
def constant_and_cast():
    rng = rng_for("constant_add")
    x = rand(rng, F32, [2, 3])
    c = rand(rng, F32, [3])
    m = model(
        [helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(c)), helper.make_node("Add", ["x", "c"], ["y"])],
        [vi("x", F32, [2, 3])],
        [vi("y", F32, [2, 3])],
    )
    write("constant_add", m, [{"x": x}])

    def cast(name, src, dst, lo=-4, hi=4):
        rng = rng_for(name)
        x = rand(rng, src, [3, 4], lo, hi)
        m = model([helper.make_node("Cast", ["x"], ["y"], to=dst)], [vi("x", src, [3, 4])], [vi("y", dst, [3, 4])])
        write(name, m, [{"x": x}])

    cast("cast_f32_i64", F32, I64)  # truncation toward zero, negatives included
    cast("cast_i64_f32", I64, F32, -1000, 1000)
    cast("cast_f32_f64", F32, F64)
    cast("cast_f64_f32", F64, F32)
    cast("cast_f32_bool", F32, BOOL, -1, 1)
    cast("cast_bool_f32", BOOL, F32)
    cast("cast_i32_i64", I32, I64, -1000, 1000)


@case
def argmax():
    unary("argmax_default", "ArgMax", F32, [3, 4])
    unary("argmax_axis1_nokeep", "ArgMax", F32, [3, 4], axis=1, keepdims=0)
    unary("argmax_neg_axis", "ArgMax", F64, [2, 3, 4], axis=-1)
    # Small integers make ties, where select_last_index matters.
    for last in (0, 1):
        name = f"argmax_ties_last{last}"
        rng = rng_for(name)
        x = rand(rng, I64, [4, 6], 0, 2)
        m = model([helper.make_node("ArgMax", ["x"], ["y"], axis=1, select_last_index=last)], [vi("x", I64, [4, 6])], [vi("y", I64, [4, 1])])
        write(name, m, [{"x": x}])


# --- matrix products -----------------------------------------------------


@case
def matmul():
    def mm(name, sa, sb, dtype=F32, const_b=False):
        rng = rng_for(name)
        a = rand(rng, dtype, sa, -3, 3)
        b = rand(rng, dtype, sb, -3, 3)
        inputs, inits, feeds = [vi("a", dtype, sa)], [], {"a": a}
        if const_b:
            inits.append(init("b", b))
        else:
            inputs.append(vi("b", dtype, sb))
            feeds["b"] = b
        m = model([helper.make_node("MatMul", ["a", "b"], ["y"])], inputs, [vi("y", dtype, None)], inits)
        write(name, m, [feeds])

    mm("matmul_2d", [3, 4], [4, 5], const_b=True)
    mm("matmul_2d_k1", [3, 1], [1, 4])
    mm("matmul_2d_n1", [2, 3], [3, 1])
    mm("matmul_2d_fp64", [2, 3], [3, 2], dtype=F64)
    mm("matmul_1d_2d", [4], [4, 3])
    mm("matmul_2d_1d", [3, 4], [4])
    mm("matmul_3d_2d", [2, 3, 4], [4, 5])
    mm("matmul_batch_bcast", [2, 1, 3, 4], [3, 4, 2])
    mm("matmul_int64", [3, 4], [4, 2], dtype=I64)
    mm("matmul_int32", [2, 3, 4], [4, 2], dtype=I32)


@case
def gemm():
    def g(name, sa, sb, sc, batches=None, const_b=True, const_c=True, **attrs):
        rng = rng_for(name)
        b = rand(rng, F32, sb)
        c = rand(rng, F32, sc) if sc is not None else None
        dyn = batches is not None
        a_decl = ["N"] + sa[1:] if dyn else sa
        inputs, inits = [vi("a", F32, a_decl)], []
        names = ["a", "b"]
        fixed = {}
        if const_b:
            inits.append(init("b", b))
        else:
            inputs.append(vi("b", F32, sb))
            fixed["b"] = b
        if c is not None:
            names.append("c")
            if const_c:
                inits.append(init("c", c))
            else:
                inputs.append(vi("c", F32, sc))
                fixed["c"] = c
        m = model([helper.make_node("Gemm", names, ["y"], **attrs)], inputs, [vi("y", F32, None)], inits)
        feeds_list = []
        for n in batches or [sa[0]]:
            feeds = {"a": rand(rng, F32, [n] + sa[1:])}
            feeds.update(fixed)
            feeds_list.append(feeds)
        write(name, m, feeds_list)

    g("gemm_default", [3, 4], [4, 5], [5])
    g("gemm_no_c", [3, 4], [4, 5], None)
    g("gemm_trans_alpha_beta", [4, 3], [5, 4], [3, 5], transA=1, transB=1, alpha=0.5, beta=2.0)
    g("gemm_c_scalar", [3, 4], [4, 5], [], beta=-1.5)
    g("gemm_c_col", [3, 4], [4, 5], [3, 1])
    g("gemm_inputs_trans", [4, 3], [5, 4], [5], const_b=False, const_c=False, transA=1, transB=1, alpha=1.25)
    # A dynamic batch: 1, 3 (padded to 8), 8, and 33 (padded to 64).
    g("gemm_batch", [1, 16], [8, 16], [8], batches=[1, 3, 8, 33], transB=1)


@case
def array_feature_extractor():
    rng = rng_for("afe_1d")
    x = rand(rng, I32, [10], -100, 100)
    y = np.array([[3], [0], [9]], dtype=np.int64)
    m = model(
        [helper.make_node("ArrayFeatureExtractor", ["x", "y"], ["z"], domain="ai.onnx.ml")],
        [vi("x", I32, [10]), vi("y", I64, [3, 1])],
        [vi("z", I32, [1, 3])],  # ONNX infers no shape for this op
        ml=True,
    )
    write("afe_1d", m, [{"x": x, "y": y}])

    rng = rng_for("afe_2d")
    x = rand(rng, F32, [3, 5])
    m = model(
        [helper.make_node("ArrayFeatureExtractor", ["x", "y"], ["z"], domain="ai.onnx.ml")],
        [vi("x", F32, [3, 5])],
        [vi("z", F32, [3, 2])],
        [init("y", np.array([4, 1], dtype=np.int64))],
        ml=True,
    )
    write("afe_2d", m, [{"x": x}])


# --- small graphs ---------------------------------------------------------


@case
def graphs():
    # Two outputs where one feeds the other: a value read after the run
    # must not be overwritten by a later op.
    rng = rng_for("shared_outputs")
    x = rand(rng, F32, [3, 4])
    m = model(
        [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["r"]), helper.make_node("Sigmoid", ["a"], ["s"])],
        [vi("x", F32, [3, 4])],
        [vi("a", F32, [3, 4]), vi("r", F32, [3, 4]), vi("s", F32, [3, 4])],
        [init("b", rand(rng, F32, [4]))],
    )
    write("shared_outputs", m, [{"x": x}])

    # A hand-built MLP classifier with a dynamic batch: Gemm, Relu, Gemm,
    # Softmax, ArgMax, at opset 11 (old Softmax semantics).
    rng = rng_for("mlp_gemm")
    w1, b1 = rand(rng, F32, [12, 20], -0.5, 0.5), rand(rng, F32, [12], -0.5, 0.5)
    w2, b2 = rand(rng, F32, [12, 5], -0.5, 0.5), rand(rng, F32, [5], -0.5, 0.5)
    m = model(
        [
            helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], transB=1),
            helper.make_node("Tanh", ["h"], ["t"]),
            helper.make_node("Gemm", ["t", "w2", "b2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"]),
            helper.make_node("ArgMax", ["probs"], ["label"], axis=1, keepdims=0),
        ],
        [vi("x", F32, ["batch", 20])],
        [vi("label", I64, ["batch"]), vi("probs", F32, ["batch", 5])],
        [init("w1", w1), init("b1", b1), init("w2", w2), init("b2", b2)],
        opset=11,
    )
    write("mlp_gemm", m, [{"x": rand(rng, F32, [n, 20])} for n in (1, 3, 8, 33)])


@case
def sklearn_mlp():
    # The shape of Corvid's default model: an scikit-learn MLPClassifier
    # exported by skl2onnx with zipmap=False (Cast, MatMul, Add, Relu,
    # Softmax, ArgMax, ArrayFeatureExtractor, Reshape, Cast).
    from sklearn.datasets import load_digits
    from sklearn.neural_network import MLPClassifier
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType
    import warnings

    X, y = load_digits(return_X_y=True)
    X = X.astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence: a few iterations are enough here
        clf = MLPClassifier(hidden_layer_sizes=(16,), max_iter=30, random_state=0).fit(X, y)
    m = to_onnx(clf, initial_types=[("input", FloatTensorType([None, 64]))], options={"zipmap": False})
    m.producer_name = "corvid-make-ops"
    write("sklearn_mlp", m, [{"input": X[s : s + n]} for s, n in ((0, 1), (1, 3), (4, 8), (12, 33))])


def main():
    for fn in CASES:
        fn()
    total = 0
    for root, _, files in os.walk(HERE):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
    print(f"wrote {len(os.listdir(HERE)) - 1} cases, {total} bytes")


if __name__ == "__main__":
    main()
