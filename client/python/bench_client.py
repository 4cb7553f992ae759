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

With --worker it is instead driven over stdin by bench/sdk_test.go
(BenchmarkSDKs), which alternates it with a Go client against one server:
after connecting and warming up it prints "ready", then answers each line
    lat sdk|stub N           N sequential calls: a JSON list of µs per call
    tput sdk|stub THREADS N  N calls over THREADS threads: calls per second
with one line, until stdin closes. Only the calls are timed.
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
import sys
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable

import grpc
import numpy as np

import corvid
from corvid.v1 import inference_pb2, inference_pb2_grpc

REPO = pathlib.Path(__file__).resolve().parents[2]


def warm_calls(client: corvid.Client, channel: grpc.Channel, x: np.ndarray) -> dict[str, Callable[[], object]]:
    """Predict of x through the SDK ("sdk") and through the bare generated
    stub with the request encoded once ("stub"), each warmed up with 300
    calls."""
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    req = inference_pb2.PredictRequest(model="digits", inputs={"input": corvid.to_tensor(x)})
    inputs = {"input": x}
    calls: dict[str, Callable[[], object]] = {
        "sdk": lambda: client.predict("digits", inputs),
        "stub": lambda: stub.Predict(req, timeout=10),
    }
    for call in calls.values():
        for _ in range(300):
            call()
    return calls


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
    with corvid.Client(target, timeout=10) as client, grpc.insecure_channel(target) as channel:
        calls = warm_calls(client, channel, x)
        # The two alternate in chunks, so that load from elsewhere on the
        # machine hits both alike.
        lat: dict[str, list[float]] = {mode: [] for mode in calls}
        for _ in range(max(1, n // 100)):
            for mode, call in calls.items():
                samples = lat[mode]
                for _ in range(100):
                    t0 = time.perf_counter()
                    call()
                    samples.append(time.perf_counter() - t0)
        k = len(lat["sdk"])
        print(f"corvid.Client.predict, batch 1, sequential ({k}):  {_percentiles(lat['sdk'])}")
        print(f"bare generated stub, pre-encoded request ({k}):    {_percentiles(lat['stub'])}")
        figures["sdk_p50_us"] = float(np.median(lat["sdk"]) * 1e6)
        figures["stub_p50_us"] = float(np.median(lat["stub"]) * 1e6)

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


def worker(target: str) -> None:
    """Answer timing commands from stdin (see the module docstring)."""
    data = json.loads((REPO / "testdata" / "digits" / "heldout.json").read_text())
    x = np.array(data["inputs"][0], dtype=np.float32)[None, :]  # what the Go side sends
    client = corvid.Client(target, timeout=10)
    channel = grpc.insecure_channel(target)
    calls = warm_calls(client, channel, x)
    clock = time.perf_counter_ns
    print("ready", flush=True)
    for line in sys.stdin:
        cmd, mode, *args = line.split()
        call = calls[mode]
        if cmd == "lat":
            lat = [0] * int(args[0])
            for i in range(len(lat)):
                t0 = clock()
                call()
                lat[i] = clock() - t0
            print(json.dumps([t / 1e3 for t in lat]), flush=True)
        elif cmd == "tput":
            threads, n = int(args[0]), int(args[1])
            per = n // threads
            gate = threading.Barrier(threads + 1)

            def work() -> None:
                gate.wait()
                for _ in range(per):
                    call()

            ts = [threading.Thread(target=work) for _ in range(threads)]
            for t in ts:
                t.start()
            gate.wait()
            t0 = clock()
            for t in ts:
                t.join()
            print(threads * per / ((clock() - t0) / 1e9), flush=True)
        else:
            raise SystemExit(f"unknown command {line!r}")
    client.close()
    channel.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--target", help="an already running server (default: start one)")
    p.add_argument("--n", type=int, default=3000, help="sequential requests per latency figure")
    p.add_argument("--seconds", type=float, default=5.0, help="length of the threaded run")
    p.add_argument("--threads", type=int, default=16)
    p.add_argument("--worker", action="store_true", help="take timing commands on stdin (for bench/sdk_test.go)")
    args = p.parse_args()
    if args.worker:
        if not args.target:
            raise SystemExit("--worker needs --target")
        worker(args.target)
        return
    print(f"corvid-client {corvid.__version__}, grpcio {grpc.__version__}, numpy {np.__version__}, {os.cpu_count()} CPUs")
    if args.target:
        run(args.target, args.n, args.seconds, args.threads)
    else:
        with _server() as target:
            run(target, args.n, args.seconds, args.threads)


if __name__ == "__main__":
    main()
