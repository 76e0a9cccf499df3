"""The bounded queue in front of the face models: it admits up to its capacity and answers 503 beyond it."""

from __future__ import annotations

import asyncio
import threading

import pytest

from lookalike.server.gate import Busy, WorkGate


def test_a_full_queue_refuses_at_once_with_a_retry_after() -> None:
    release = threading.Event()
    gate = WorkGate(concurrency=1, capacity=2, wait_timeout=30)

    async def scenario() -> list[object]:
        first = asyncio.create_task(gate.run(release.wait, 10))
        second = asyncio.create_task(gate.run(lambda: "second"))
        await asyncio.sleep(0)  # both admitted: one running, one waiting
        with pytest.raises(Busy) as refused:
            await gate.run(lambda: "third")
        assert refused.value.http_status == 503 and refused.value.retry_after >= 1
        release.set()
        return list(await asyncio.gather(first, second))

    assert asyncio.run(scenario()) == [True, "second"]


def test_a_request_that_waits_too_long_gets_busy() -> None:
    release = threading.Event()
    gate = WorkGate(concurrency=1, capacity=8, wait_timeout=0.05)

    async def scenario() -> None:
        first = asyncio.create_task(gate.run(release.wait, 10))
        await asyncio.sleep(0)
        with pytest.raises(Busy, match="no turn within"):
            await gate.run(lambda: None)
        release.set()
        await first

    asyncio.run(scenario())
