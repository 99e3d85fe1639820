"""A small HTTP/1.1 load generator for the tracking benchmark (standard library only).

Run as a child process so it does not share the benchmark's interpreter:

    python -m bench.tracking_loadgen SPEC.json   ->  prints one JSON line of results

SPEC: {"host", "port", "requests": [raw request bytes as latin-1 text, cycled], "concurrency",
"seconds" (how long new requests are issued), "max_requests" (optional cap)}.

Each of `concurrency` keep-alive connections sends a request, reads the whole response,
records the latency and sends the next. When the time is up no new request is issued and
the ones in flight are awaited, so every request sent is answered or counted as an error:
`sent == answered + errors`, which is what the zero-loss check compares with the database.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter

TIMEOUT_SECONDS = 10


class Shared:
    def __init__(self, spec: dict):
        self.requests = [text.encode("latin-1") for text in spec["requests"]]
        self.deadline = time.monotonic() + float(spec["seconds"])
        self.max_requests = int(spec.get("max_requests") or 0)
        self.next_index = 0
        self.sent = 0
        self.errors = 0
        self.statuses: Counter[int] = Counter()
        self.latencies: list[float] = []

    def take(self) -> bytes | None:
        if time.monotonic() >= self.deadline or (self.max_requests and self.sent >= self.max_requests):
            return None
        request = self.requests[self.next_index % len(self.requests)]
        self.next_index += 1
        self.sent += 1
        return request


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    keep_alive = True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value.strip())
        elif name == "connection" and value.strip().lower() == "close":
            keep_alive = False
    if length:
        await reader.readexactly(length)
    return status, keep_alive


async def connection(host: str, port: int, shared: Shared) -> None:
    reader = writer = None
    while True:
        request = shared.take()
        if request is None:
            break
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection(host, port)
            started = time.perf_counter()
            writer.write(request)
            status, keep_alive = await asyncio.wait_for(read_response(reader), TIMEOUT_SECONDS)
            shared.latencies.append(time.perf_counter() - started)
            shared.statuses[status] += 1
            if not keep_alive:
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
            shared.errors += 1
            if writer is not None:
                writer.close()
            writer = None
    if writer is not None:
        writer.close()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def main(spec: dict) -> dict:
    shared = Shared(spec)
    started = time.perf_counter()
    await asyncio.gather(*(connection(spec["host"], spec["port"], shared) for _ in range(spec["concurrency"])))
    elapsed = time.perf_counter() - started
    answered = sum(shared.statuses.values())
    return {
        "sent": shared.sent,
        "answered": answered,
        "errors": shared.errors,
        "statuses": {str(k): v for k, v in sorted(shared.statuses.items())},
        "seconds": elapsed,
        "rate": answered / elapsed if elapsed else 0.0,
        "p50_ms": 1000 * percentile(shared.latencies, 0.50),
        "p99_ms": 1000 * percentile(shared.latencies, 0.99),
        "max_ms": 1000 * max(shared.latencies, default=0.0),
    }


if __name__ == "__main__":
    with open(sys.argv[1], encoding="utf-8") as handle:
        loaded = json.load(handle)
    print(json.dumps(asyncio.run(main(loaded))))
