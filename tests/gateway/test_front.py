"""The ActiveSync endpoint in front of Starlette (eas_gateway.front) and a held request's
end when its phone hangs up (eas_gateway.hang_up), on their own: no database, no upstream."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from eas_gateway.front import PATH, ActiveSyncFront
from eas_gateway.hang_up import EXTENSION, HangUpWatch, HungUp


def _front(handler: Any) -> ActiveSyncFront:
    async def other(request: Request) -> Response:
        return PlainTextResponse("behind")

    return ActiveSyncFront(Starlette(routes=[Route("/healthz", other)]), handler)


async def _ask(app: ActiveSyncFront, method: str, path: str, root_path: str = "") -> httpx.Response:
    transport = httpx.ASGITransport(app=app, root_path=root_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway") as http:
        return await http.request(method, path)


def test_the_endpoint_goes_to_its_handler_and_everything_else_behind() -> None:
    seen: list[str] = []

    async def handler(request: Request) -> Response:
        seen.append(f"{request.method} {request.url.query}")
        return Response(b"ok")

    app = _front(handler)
    answers = asyncio.run(_ask(app, "POST", PATH + "?Cmd=Ping")), asyncio.run(_ask(app, "OPTIONS", PATH)), \
        asyncio.run(_ask(app, "GET", "/healthz")), asyncio.run(_ask(app, "POST", "/Microsoft-Server-ActiveSyncX"))
    assert [(a.status_code, a.text) for a in answers] == [(200, "ok"), (200, "ok"), (200, "behind"),
                                                          (404, "Not Found")]
    assert seen == ["POST Cmd=Ping", "OPTIONS "]
    # Below a root path (a proxy mounting the gateway under /eas) the endpoint is matched beneath it.
    assert asyncio.run(_ask(app, "POST", "/eas" + PATH, root_path="/eas")).text == "ok"


def test_other_methods_get_405_with_the_allowed_ones() -> None:
    async def handler(request: Request) -> Response:
        raise AssertionError("not for a GET")

    answer = asyncio.run(_ask(_front(handler), "GET", PATH))
    assert (answer.status_code, answer.headers["allow"]) == (405, "OPTIONS, POST")


def test_an_exception_the_handler_lets_through_is_a_logged_500(caplog: pytest.LogCaptureFixture) -> None:
    async def handler(request: Request) -> Response:
        raise RuntimeError("a bug")

    with caplog.at_level(logging.ERROR, logger="eas_gateway.front"):
        answer = asyncio.run(_ask(_front(handler), "POST", PATH))
    assert answer.status_code == 500
    assert "a bug" in caplog.text


def _request(extensions: dict[str, Any] | None, receive: Any = None) -> Request:
    scope: dict[str, Any] = {"type": "http", "method": "POST", "path": PATH, "headers": [], "query_string": b""}
    if extensions is not None:
        scope["extensions"] = extensions
    return Request(scope, receive)


async def until_hung_up(request: Request, work: Any) -> Any:
    with HangUpWatch(request):
        return await work


def test_under_our_server_a_hang_up_ends_the_held_request_with_no_task_beside_it() -> None:
    callbacks: list[Any] = []

    async def go() -> None:
        held = asyncio.Event()

        async def work() -> str:
            held.set()
            await asyncio.sleep(3600)
            return "answered"

        tasks_before = len(asyncio.all_tasks())
        task = asyncio.ensure_future(until_hung_up(_request({EXTENSION: callbacks}), work()))
        await held.wait()
        assert len(asyncio.all_tasks()) == tasks_before + 1 and len(callbacks) == 1
        for callback in list(callbacks):
            callback()  # what eas_gateway.server's protocol does when the connection is lost
        with pytest.raises(HungUp):
            await task

    asyncio.run(go())
    assert callbacks == []  # nothing left behind


def test_an_answer_in_time_leaves_no_callback_and_a_cancel_from_elsewhere_stays_a_cancel() -> None:
    callbacks: list[Any] = []

    async def go() -> None:
        async def quick() -> str:
            return "answered"

        assert await until_hung_up(_request({EXTENSION: callbacks}), quick()) == "answered"
        assert callbacks == []
        task = asyncio.ensure_future(until_hung_up(_request({EXTENSION: callbacks}), asyncio.sleep(3600)))
        await asyncio.sleep(0)
        task.cancel()  # the server stops, say: not a hang-up
        with pytest.raises(asyncio.CancelledError):
            await task
        assert callbacks == []

    asyncio.run(go())


def test_under_another_server_a_task_listens_for_the_disconnect() -> None:
    async def go() -> None:
        gone = asyncio.Event()

        async def receive() -> dict[str, Any]:
            await gone.wait()
            return {"type": "http.disconnect"}

        task = asyncio.ensure_future(until_hung_up(_request(None, receive), asyncio.sleep(3600)))
        await asyncio.sleep(0.01)
        assert not task.done()
        gone.set()
        with pytest.raises(HungUp):
            await task

    asyncio.run(go())


def test_the_servers_slim_event_does_what_uvicorn_asks_of_an_asyncio_event() -> None:
    from eas_gateway.server import SlimEvent

    async def go() -> None:
        event = SlimEvent()
        assert not event.is_set()
        first, second = asyncio.ensure_future(event.wait()), asyncio.ensure_future(event.wait())
        await asyncio.sleep(0)
        first.cancel()  # one waiter gone does not end the other's wait
        await asyncio.sleep(0)
        assert not second.done()
        event.set()
        assert await second is True and event.is_set()
        assert await event.wait() is True  # set: no wait
        event.clear()
        late = asyncio.ensure_future(event.wait())
        await asyncio.sleep(0.01)
        assert not late.done()
        event.set()
        assert await late is True

    asyncio.run(go())
