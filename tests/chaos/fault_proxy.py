"""An HTTP/1.1 proxy between the gateway and its upstream that fails on purpose.

Each request it relays draws, at ``rate``, one fault from a seeded random generator:

- ``refuse``: 503 without asking the upstream (nothing happened there);
- ``drop_before``: the connection closes before the upstream is asked (nothing happened);
- ``drop_after``: the upstream did it, then the connection closes (the gateway never learns
  whether its write happened: the hard case for "nothing done twice");
- ``error_after``: the upstream did it, the gateway is told 502;
- ``timeout``: the upstream is asked after a pause, or (half of them) the answer never comes and
  the connection closes after it.

Locations in redirects are rewritten to the proxy, so that discovery stays behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections import Counter

import httpx

KINDS = ("refuse", "drop_before", "drop_after", "error_after", "timeout")
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
              "content-length", "accept-encoding", "host"}


class FaultProxy:
    def __init__(self, target: str, *, seed: int, rate: float = 0.0, pause: float = 1.0) -> None:
        self.target = target.rstrip("/")
        self.rate = rate
        self.pause = pause
        self.faults: Counter[str] = Counter()
        self.relayed = 0
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fault proxy")
        self._thread.start()
        self._ready.wait(10)
        self.url = f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._client = httpx.AsyncClient(timeout=60.0, follow_redirects=False)
        self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            await self._client.aclose()
        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def _draw(self) -> str | None:
        with self._lock:
            self.relayed += 1
            if self._random.random() >= self.rate:
                return None
            kind = self._random.choice(KINDS)
            self.faults[kind] += 1
            return kind

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Relay one request; False when the connection is to close."""
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ", 2)
        headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines if line)]
        names = {k.lower(): v for k, v in headers}
        if names.get("transfer-encoding", "").lower() == "chunked":
            body = await _chunked(reader)
        else:
            body = await reader.readexactly(int(names.get("content-length", "0")))
        fault = self._draw()
        if fault == "drop_before":
            return False
        if fault == "refuse":
            await _answer(writer, 503, [("Retry-After", "1")], b"fault proxy: refused\n")
            return True
        if fault == "timeout":
            await asyncio.sleep(self.pause)
        forwarded = [(k, v) for k, v in headers if k.lower() not in HOP_BY_HOP] + [("Accept-Encoding", "identity")]
        try:
            response = await self._client.request(method, self.target + target, headers=forwarded, content=body)
        except httpx.HTTPError:
            return False
        if fault == "drop_after" or (fault == "timeout" and self._random.random() < 0.5):
            return False
        if fault == "error_after":
            await _answer(writer, 502, [], b"fault proxy: bad gateway\n")
            return True
        out = [(k, v) for k, v in response.headers.multi_items()
               if k.lower() not in HOP_BY_HOP and k.lower() != "content-encoding"]
        out = [(k, v.replace(self.target, self.url) if k.lower() == "location" else v) for k, v in out]
        await _answer(writer, response.status_code, out, response.content, reason=response.reason_phrase)
        return names.get("connection", "").lower() != "close"


async def _chunked(reader: asyncio.StreamReader) -> bytes:
    body = b""
    while True:
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        if size == 0:
            await reader.readuntil(b"\r\n")
            return body
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _answer(writer: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes, *,
                  reason: str = "") -> None:
    lines = [f"HTTP/1.1 {status} {reason or 'Fault'}"] + [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
