"""Write the neural-network models of Corvid's model zoo, with seeded weights.

Two graphs written with the onnx helper API, each the shape of what people
export from PyTorch:

- lenet: a LeNet-style CNN for the 8x8 digits images, input [N, 1, 8, 8]:
  Conv+BatchNormalization+Relu, MaxPool, Conv+Relu, AveragePool, Flatten,
  two Gemm layers and a Softmax.
- encoder: one transformer encoder block (pre-norm), input [N, S, 32] with
  the sequence length S dynamic: LayerNormalization, multi-head attention
  (4 heads) through MatMul, Reshape, Transpose and Softmax, residual Adds,
  and a feed-forward layer with the exact (erf) GELU.

Weights are random but seeded, so every run writes the same bytes. Usage, from
the repository root: .venv/bin/python testdata/zoo/make_nets.py
"""

import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models")
OPSET = 17  # LayerNormalization needs 17


def init(rng, name, *shape, scale=None):
    """A seeded initializer, scaled like a default PyTorch init."""
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else shape[0]
    scale = scale if scale is not None else 1.0 / np.sqrt(fan_in)
    return numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name)


def const(name, values, dtype=np.float32):
    return numpy_helper.from_array(np.asarray(values, dtype=dtype), name)


def save(model, name):
    onnx.checker.check_model(model, full_check=True)
    path = os.path.join(OUT, name, "1", "model.onnx")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(model.SerializeToString())
    print(f"wrote {path}")


def lenet(rng):
    n = helper.make_node
    nodes = [
        n("Conv", ["x", "c1.w", "c1.b"], ["c1"], name="conv1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("BatchNormalization", ["c1", "bn.scale", "bn.bias", "bn.mean", "bn.var"], ["bn"], name="bn1", epsilon=1e-5),
        n("Relu", ["bn"], ["r1"], name="relu1"),
        n("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
        n("Conv", ["p1", "c2.w", "c2.b"], ["c2"], name="conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        n("Relu", ["c2"], ["r2"], name="relu2"),
        n("AveragePool", ["r2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2]),
        n("Flatten", ["p2"], ["f"], name="flatten", axis=1),
        n("Gemm", ["f", "fc1.w", "fc1.b"], ["h"], name="fc1", transB=1),
        n("Relu", ["h"], ["r3"], name="relu3"),
        n("Gemm", ["r3", "fc2.w", "fc2.b"], ["logits"], name="fc2", transB=1),
        n("Softmax", ["logits"], ["probabilities"], name="softmax", axis=1),
    ]
    inits = [
        init(rng, "c1.w", 6, 1, 3, 3), init(rng, "c1.b", 6, scale=0.1),
        const("bn.scale", 1 + 0.1 * rng.standard_normal(6)), const("bn.bias", 0.1 * rng.standard_normal(6)),
        const("bn.mean", 0.1 * rng.standard_normal(6)), const("bn.var", 1 + 0.2 * rng.random(6)),
        init(rng, "c2.w", 16, 6, 3, 3), init(rng, "c2.b", 16, scale=0.1),
        init(rng, "fc1.w", 32, 64), init(rng, "fc1.b", 32, scale=0.1),
        init(rng, "fc2.w", 10, 32), init(rng, "fc2.b", 10, scale=0.1),
    ]
    graph = helper.make_graph(
        nodes, "lenet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1, 8, 8])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 10])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="corvid-zoo")


def encoder(rng, d=32, heads=4, ff=128):
    n = helper.make_node
    dh = d // heads
    nodes = [
        n("LayerNormalization", ["x", "ln1.g", "ln1.b"], ["ln1"], name="ln1", axis=-1, epsilon=1e-5),
        n("MatMul", ["ln1", "wq"], ["q"], name="q_proj"),
        n("MatMul", ["ln1", "wk"], ["k"], name="k_proj"),
        n("MatMul", ["ln1", "wv"], ["v"], name="v_proj"),
        # [N, S, D] -> [N, S, H, Dh] -> [N, H, S, Dh]; 0 copies N and S, so
        # the shape constant works for every batch and sequence length.
        n("Reshape", ["q", "heads_shape"], ["q4"], name="q_split"),
        n("Reshape", ["k", "heads_shape"], ["k4"], name="k_split"),
        n("Reshape", ["v", "heads_shape"], ["v4"], name="v_split"),
        n("Transpose", ["q4"], ["qh"], name="q_heads", perm=[0, 2, 1, 3]),
        n("Transpose", ["k4"], ["kt"], name="k_heads_t", perm=[0, 2, 3, 1]),
        n("Transpose", ["v4"], ["vh"], name="v_heads", perm=[0, 2, 1, 3]),
        n("MatMul", ["qh", "kt"], ["scores"], name="scores"),
        n("Div", ["scores", "sqrt_dh"], ["scaled"], name="scale"),
        n("Softmax", ["scaled"], ["attn"], name="attn", axis=-1),
        n("MatMul", ["attn", "vh"], ["ctx"], name="context"),
        n("Transpose", ["ctx"], ["ctx_t"], name="merge_t", perm=[0, 2, 1, 3]),
        n("Reshape", ["ctx_t", "model_shape"], ["ctx_m"], name="merge"),
        n("MatMul", ["ctx_m", "wo"], ["attn_out"], name="o_proj"),
        n("Add", ["x", "attn_out"], ["res1"], name="residual1"),
        n("LayerNormalization", ["res1", "ln2.g", "ln2.b"], ["ln2"], name="ln2", axis=-1, epsilon=1e-5),
        n("MatMul", ["ln2", "w1"], ["h"], name="ff1"),
        n("Add", ["h", "b1"], ["hb"], name="ff1_bias"),
        # GELU(x) = 0.5 x (1 + erf(x / sqrt 2)), as PyTorch exports it.
        n("Div", ["hb", "sqrt2"], ["hs"], name="gelu_div"),
        n("Erf", ["hs"], ["he"], name="gelu_erf"),
        n("Add", ["he", "one"], ["h1"], name="gelu_add"),
        n("Mul", ["hb", "h1"], ["hm"], name="gelu_mul"),
        n("Mul", ["hm", "half"], ["g"], name="gelu_half"),
        n("MatMul", ["g", "w2"], ["f"], name="ff2"),
        n("Add", ["f", "b2"], ["fb"], name="ff2_bias"),
        n("Add", ["res1", "fb"], ["y"], name="residual2"),
    ]
    inits = [
        const("ln1.g", 1 + 0.1 * rng.standard_normal(d)), const("ln1.b", 0.1 * rng.standard_normal(d)),
        init(rng, "wq", d, d), init(rng, "wk", d, d), init(rng, "wv", d, d), init(rng, "wo", d, d),
        const("heads_shape", [0, 0, heads, dh], np.int64), const("model_shape", [0, 0, d], np.int64),
        const("sqrt_dh", np.sqrt(dh)),
        const("ln2.g", 1 + 0.1 * rng.standard_normal(d)), const("ln2.b", 0.1 * rng.standard_normal(d)),
        init(rng, "w1", d, ff), init(rng, "b1", ff, scale=0.1), init(rng, "w2", ff, d), init(rng, "b2", d, scale=0.1),
        const("sqrt2", np.sqrt(2.0)), const("one", 1.0), const("half", 0.5),
    ]
    graph = helper.make_graph(
        nodes, "encoder",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", "seq", d])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", d])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="corvid-zoo")


def main():
    rng = np.random.default_rng(20261127)
    for name, make in [("lenet", lenet), ("encoder", encoder)]:
        model = make(rng)
        model.ir_version = 8
        save(model, name)


if __name__ == "__main__":
    main()
