"""Python client overhead against a real Corvid server on loopback.

Measures, on the embedded digits model at batch 1:
  - predict latency (p50, p90, p99) through corvid.Client, sequentially;
  - the same request through the bare generated stub with a pre-encoded
    request, the floor the SDK adds to;
  - throughput of 16 threads sharing one Client;
  - throughput of one stream();
  - AsyncClient: sequential latency, and throughput of 16 concurrent tasks.

Usage (from the repository root, after `make build`):
    .venv/bin/python client/python/bench_client.py [--target HOST:PORT] [--n 3000] [--seconds 5]
Without --target it starts `corvid serve` ($CORVID_BIN or bin/corvid) on free
loopback ports and stops it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import pathlib
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import grpc
import numpy as np

import corvid
from corvid.v1 import inference_pb2, inference_pb2_grpc

REPO = pathlib.Path(__file__).resolve().parents[2]


def _ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


@contextlib.contextmanager
def _server():
    binary = os.environ.get("CORVID_BIN") or str(REPO / "bin" / "corvid")
    g, h, a = _ports(3)
    proc = subprocess.Popen(
        [binary, "serve", "--grpc-addr", f"127.0.0.1:{g}", "--http-addr", f"127.0.0.1:{h}",
         "--admin-addr", f"127.0.0.1:{a}", "--log-level", "warn"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with opener.open(f"http://127.0.0.1:{a}/readyz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("corvid serve did not become ready")
            time.sleep(0.05)
        yield f"127.0.0.1:{g}"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)


def _percentiles(samples: list[float]) -> str:
    us = np.array(samples) * 1e6
    p50, p90, p99 = np.percentile(us, [50, 90, 99])
    return f"p50 {p50:7.1f} us   p90 {p90:7.1f} us   p99 {p99:7.1f} us"


def run(target: str, n: int, seconds: float, threads: int) -> dict[str, float]:
    data = json.loads((REPO / "testdata" / "digits" / "heldout.json").read_text())
    rows = np.array(data["inputs"], dtype=np.float32)
    x = rows[:1]
    figures: dict[str, float] = {}
    with corvid.Client(target, timeout=10) as client:
        for _ in range(300):
            client.predict("digits", {"input": x})
        lat = []
        for i in range(n):
            t0 = time.perf_counter()
            client.predict("digits", {"input": rows[i % len(rows)][None, :]})
            lat.append(time.perf_counter() - t0)
        print(f"corvid.Client.predict, batch 1, sequential ({n}):  {_percentiles(lat)}")
        figures["sdk_p50_us"] = float(np.median(lat) * 1e6)

        with grpc.insecure_channel(target) as channel:
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            req = inference_pb2.PredictRequest(model="digits", inputs={"input": corvid.to_tensor(x)})
            for _ in range(300):
                stub.Predict(req, timeout=10)
            lat = []
            for _ in range(n):
                t0 = time.perf_counter()
                stub.Predict(req, timeout=10)
                lat.append(time.perf_counter() - t0)
        print(f"bare generated stub, pre-encoded request ({n}):    {_percentiles(lat)}")
        figures["stub_p50_us"] = float(np.median(lat) * 1e6)

        count = [0] * threads
        stop = time.monotonic() + seconds

        def work(k: int) -> None:
            while time.monotonic() < stop:
                client.predict("digits", {"input": x})
                count[k] += 1

        ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        t0 = time.perf_counter()
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        rate = sum(count) / (time.perf_counter() - t0)
        print(f"{threads} threads, one Client, batch 1, {seconds:.0f} s:          {rate:9.0f} predictions/s")
        figures["threads_per_s"] = rate

        items = 5000
        t0 = time.perf_counter()
        done = sum(r.ok for r in client.stream("digits", ({"input": x} for _ in range(items))))
        rate = done / (time.perf_counter() - t0)
        assert done == items
        print(f"one stream(), {items} requests of batch 1:               {rate:9.0f} predictions/s")
        figures["stream_per_s"] = rate
    figures.update(asyncio.run(_run_async(target, x, n, seconds, threads)))
    return figures


async def _run_async(target: str, x: np.ndarray, n: int, seconds: float, tasks: int) -> dict[str, float]:
    async with corvid.AsyncClient(target, timeout=10) as client:
        for _ in range(300):
            await client.predict("digits", {"input": x})
        lat = []
        for _ in range(n):
            t0 = time.perf_counter()
            await client.predict("digits", {"input": x})
            lat.append(time.perf_counter() - t0)
        print(f"corvid.AsyncClient.predict, batch 1, sequential ({n}): {_percentiles(lat)}")
        count = 0
        stop = time.monotonic() + seconds

        async def work() -> None:
            nonlocal count
            while time.monotonic() < stop:
                await client.predict("digits", {"input": x})
                count += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(work() for _ in range(tasks)))
        rate = count / (time.perf_counter() - t0)
        print(f"{tasks} asyncio tasks, one AsyncClient, batch 1, {seconds:.0f} s:  {rate:9.0f} predictions/s")
    return {"async_p50_us": float(np.median(lat) * 1e6), "async_tasks_per_s": rate}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", help="an already running server (default: start one)")
    p.add_argument("--n", type=int, default=3000, help="sequential requests per latency figure")
    p.add_argument("--seconds", type=float, default=5.0, help="length of the threaded run")
    p.add_argument("--threads", type=int, default=16)
    args = p.parse_args()
    print(f"corvid-client {corvid.__version__}, grpcio {grpc.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    if args.target:
        run(args.target, args.n, args.seconds, args.threads)
    else:
        with _server() as target:
            run(target, args.n, args.seconds, args.threads)


if __name__ == "__main__":
    main()
