"""corvid.AsyncClient against a real `corvid serve`."""

import asyncio

import grpc
import numpy as np
import pytest

import corvid
from conftest import free_loopback_ports, start_server
from corvid.v1 import model_pb2


def run(coro):
    return asyncio.run(coro)


def test_unary_calls(corvid_server, heldout):
    async def main():
        async with corvid.AsyncClient(corvid_server.target, timeout=10) as c:
            got = await c.predict("digits", {"input": heldout.inputs[:32]}, version=1, request_id="a-1")
            assert got.request_id == "a-1" and got.model_version == 1
            assert (got.outputs["label"] == heldout.labels[:32]).mean() > 0.9
            assert got.outputs["probabilities"].dtype == np.float32
            assert (await c.model_status("digits")).versions[0].state == model_pb2.MODEL_STATE_AVAILABLE
            assert [m.name for m in await c.list_models()] == ["digits"]
            assert await c.health() is True

    run(main())


def test_errors(corvid_server):
    async def main():
        async with corvid.AsyncClient(corvid_server.target, timeout=10, retries=0) as c:
            with pytest.raises(corvid.NotFound) as e:
                await c.predict("nope", {"input": np.zeros((1, 64), np.float32)})
            assert e.value.reason == "MODEL_NOT_FOUND"
            with pytest.raises(corvid.InvalidArgument) as e:
                await c.predict("digits", {"input": np.zeros((2, 3), np.float32)})
            assert e.value.reason == "INVALID_INPUT" and "want [N 64]" in e.value.message
        (port,) = free_loopback_ports(1)
        retry = corvid.Retry(max_retries=2, initial_backoff=0.1, jitter=0)
        async with corvid.AsyncClient(f"127.0.0.1:{port}", timeout=10, retries=retry) as down:
            loop = asyncio.get_running_loop()
            start = loop.time()
            with pytest.raises(corvid.Unavailable) as e:
                await down.predict("digits", {"input": np.zeros((1, 64), np.float32)})
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
            assert loop.time() - start >= 0.3  # 0.1 + 0.2 s of backoff

    run(main())


def test_stream_of_1000_from_sync_and_async_iterables(corvid_server, heldout):
    rows = [heldout.inputs[i % len(heldout.inputs)][None, :] for i in range(1000)]

    async def agen():
        for r in rows:
            yield {"input": r}

    async def main():
        async with corvid.AsyncClient(corvid_server.target) as c:
            for source in ([{"input": r} for r in rows], agen()):
                results = [r async for r in c.stream("digits", source)]
                assert [r.index for r in results] == list(range(1000))
                for r, x in zip(results, rows):
                    assert r.request["input"] is x
                    assert r.result().outputs["label"].shape == (1,)
                labels = np.concatenate([r.result().outputs["label"] for r in results])
                want = heldout.labels[np.arange(1000) % len(heldout.labels)]
                assert (labels == want).mean() > 0.9
            unordered = [r async for r in c.stream("digits", [{"input": rows[0]}, {"input": rows[0][:, :3]}], ordered=False)]
            assert sorted((r.index, r.ok) for r in unordered) == [(0, True), (1, False)]
            with pytest.raises(TypeError):
                [r async for r in c.stream("digits", [{"input": np.zeros((1, 64), np.float16)}])]

    run(main())


def test_deadline_exceeded(tmp_path):
    proc = start_server(tmp_path)
    row = {"input": np.zeros((1, 64), np.float32)}

    async def main():
        async with corvid.AsyncClient(proc.server.target, timeout=0.3) as c:
            await c.predict("digits", row, timeout=10)  # connected
            proc.freeze()
            with pytest.raises(corvid.DeadlineExceeded):
                await c.predict("digits", row)
            with pytest.raises(corvid.DeadlineExceeded):
                [r async for r in c.stream("digits", [row], timeout=0.2)]

    try:
        run(main())
    finally:
        proc.thaw()
        proc.stop()


def test_many_concurrent_predicts(corvid_server, heldout):
    async def main():
        async with corvid.AsyncClient(corvid_server.target, timeout=30) as c:
            preds = await asyncio.gather(
                *(c.predict("digits", {"input": heldout.inputs[i:i + 1]}, request_id=str(i)) for i in range(200))
            )
        assert [p.request_id for p in preds] == [str(i) for i in range(200)]
        labels = np.concatenate([p.outputs["label"] for p in preds])
        assert (labels == heldout.labels[:200]).mean() > 0.9

    run(main())
