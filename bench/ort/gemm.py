"""Time ONNX Runtime's int8 and fp32 matrix products on the shapes of
PERF.md, for a side-by-side comparison with Corvid's kernels
(`go test -run X -bench 'BenchmarkGemm|BenchmarkSgemm' -cpu 1 ./kernels/`).

Each shape is a one-node model with the weights as an initializer, so ONNX
Runtime packs them once, as Corvid's PackB does: MatMulInteger (u8 x s8 ->
s32, the same contract as kernels.GemmU8S8) and MatMul (fp32). One intra-op
thread, median of many calls after warm-up; the binding overhead of a Python
call (~1-2 us) is included, as in PERF.md's table.

Usage, from the repository root: .venv/bin/python bench/ort/gemm.py
"""

import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

SHAPES = [(m, nk, nk) for nk in (768, 3072) for m in (1, 8, 32, 128)] + [(1024, 1024, 1024)]


def session(model, threads=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def matmul_integer(k, n, rng):
    b = rng.integers(-128, 128, (k, n), dtype=np.int8)
    node = helper.make_node("MatMulInteger", ["a", "b", "a_zero"], ["c"])
    graph = helper.make_graph(
        [node], "mmi",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, ["m", k])],
        [helper.make_tensor_value_info("c", TensorProto.INT32, ["m", n])],
        [numpy_helper.from_array(b, "b"), numpy_helper.from_array(np.array(128, np.uint8), "a_zero")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def matmul_fp32(k, n, rng):
    b = rng.standard_normal((k, n)).astype(np.float32)
    node = helper.make_node("MatMul", ["a", "b"], ["c"])
    graph = helper.make_graph(
        [node], "mm",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, ["m", k])],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, ["m", n])],
        [numpy_helper.from_array(b, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def median_seconds(sess, feeds, min_time=0.3):
    for _ in range(5):
        sess.run(None, feeds)
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times) < 20:
        t0 = time.perf_counter()
        sess.run(None, feeds)
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def serve():
    """Answer "M N K SECONDS [CPU [THREADS]]" lines on stdin with the int8
    GOPS of MatMulInteger over a window of that length (median per call), run
    on that CPU when one is given (>= 0), so that a caller can alternate short
    windows of Corvid and ONNX Runtime on one CPU and both see the same state
    of a shared machine (kernels' BenchmarkVsORT). With THREADS > 1 the
    session has that many intra-op threads: the calling thread, pinned to
    CPU, and THREADS-1 pool threads, which ONNX Runtime starts with the
    session and which may run on any CPU this process may use (a thread
    inherits the affinity of the one that starts it, so the session is made
    with the calling thread unpinned)."""
    import os
    import sys

    rng = np.random.default_rng(0)
    every = os.sched_getaffinity(0) if hasattr(os, "sched_setaffinity") else None
    sessions = {}
    for line in sys.stdin:
        m, n, k, seconds, *rest = line.split()
        m, n, k, seconds = int(m), int(n), int(k), float(seconds)
        cpu = int(rest[0]) if rest else -1
        threads = int(rest[1]) if len(rest) > 1 else 1
        key = (m, n, k, threads)
        if key not in sessions:
            if every is not None:
                os.sched_setaffinity(0, every)
            sessions[key] = (session(matmul_integer(k, n, rng), threads), {"a": rng.integers(0, 256, (m, k), dtype=np.uint8)})
        if cpu >= 0 and every is not None:
            os.sched_setaffinity(0, {cpu})
        sess, feeds = sessions[key]
        t = median_seconds(sess, feeds, min_time=seconds)
        print(f"{2.0 * m * n * k / t / 1e9:.1f}", flush=True)


def main():
    import sys

    if sys.argv[1:] == ["--serve"]:
        serve()
        return
    rng = np.random.default_rng(0)
    print(f"ONNX Runtime {ort.__version__}, 1 thread, median per call")
    print(f"{'M x N x K':>18}  {'MatMulInteger GOPS':>18}  {'MatMul fp32 GFLOPS':>18}")
    for m, n, k in SHAPES:
        ops = 2.0 * m * n * k
        a8 = rng.integers(0, 256, (m, k), dtype=np.uint8)
        a32 = rng.standard_normal((m, k)).astype(np.float32)
        t8 = median_seconds(session(matmul_integer(k, n, rng)), {"a": a8})
        t32 = median_seconds(session(matmul_fp32(k, n, rng)), {"a": a32})
        print(f"{m:>6} x {n:>4} x {k:>4}  {ops / t8 / 1e9:>18.1f}  {ops / t32 / 1e9:>18.1f}")
        print(f"ort-gemm {m}x{n}x{k} int8 {ops / t8 / 1e9:.1f} fp32 {ops / t32 / 1e9:.1f}")


if __name__ == "__main__":
    main()
