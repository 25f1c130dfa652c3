"""usm.access.DeviceAccess without a database (a fake pool): the order rules are tried in,
one read of the rules for many requests at once, and what the loop counter counts. The real
database and CLI: tests/gateway/test_device_access.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from usm.access import ALLOW, BLOCK, QUARANTINE, DeviceAccess


class FakePool:
    def __init__(self, rules: list[dict[str, Any]] = (), blocks: list[dict[str, Any]] = ()) -> None:
        self.rules, self.blocks, self.reads, self.executed = list(rules), list(blocks), 0, []

    def acquire(self) -> FakePool:
        return self

    async def __aenter__(self) -> FakePool:
        return self

    async def __aexit__(self, *_: object) -> None:
        return None

    async def fetch(self, query: str, *args: object) -> list[dict[str, Any]]:
        self.reads += 1
        await asyncio.sleep(0.01)
        return self.rules if "device_rules" in query else self.blocks

    async def execute(self, query: str, *args: object) -> None:
        self.executed.append((query, args))


def rule(id: int, field: str, pattern: str, access: str, user: str | None = None) -> dict[str, Any]:
    return {"id": id, "user_name": user, "field": field, "pattern": pattern, "access": access}


def decide(access: DeviceAccess, user: str = "alice@example.com", device: str = "DEV1", kind: str = "iPhone",
           agent: str = "Apple-iPhone15C2/2103.61") -> str:
    return asyncio.run(access.decide(user, device, kind, agent)).access


def test_the_users_rules_first_then_device_id_user_agent_device_type() -> None:
    pool = FakePool([rule(1, "device_type", "iphone", BLOCK), rule(2, "user_agent", "apple-*", QUARANTINE),
                     rule(3, "device_id", "dev1", ALLOW, "alice@example.com"),
                     rule(4, "device_type", "IPHONE", ALLOW, "bob@example.com")])
    access = DeviceAccess(pool, reload_seconds=3600)  # type: ignore[arg-type]
    assert decide(access) == ALLOW  # alice's own DeviceId rule
    assert decide(access, device="DEV2") == QUARANTINE  # everyone's User-Agent before everyone's DeviceType
    assert decide(access, device="DEV2", agent="Android/1") == BLOCK
    assert decide(access, user="bob@example.com", device="X") == ALLOW  # bob's own type rule, any case
    assert decide(access, device="DEV2", kind="Pixel", agent="Android/1") == ALLOW  # the default


def test_a_block_beats_every_rule_until_it_ends() -> None:
    soon, gone = datetime.now(UTC) + timedelta(minutes=5), datetime.now(UTC) - timedelta(minutes=5)
    pool = FakePool([rule(1, "device_id", "*", ALLOW, "alice@example.com")],
                    [{"user_name": "alice@example.com", "device_id": "dev1", "until": soon, "reason": "loop"},
                     {"user_name": "alice@example.com", "device_id": "dev2", "until": gone, "reason": "old"}])
    access = DeviceAccess(pool, reload_seconds=3600)  # type: ignore[arg-type]
    assert decide(access) == BLOCK
    assert decide(access, device="DEV2") == ALLOW


def test_many_requests_at_once_read_the_rules_once() -> None:
    pool = FakePool()
    access = DeviceAccess(pool)  # type: ignore[arg-type]

    async def many() -> None:
        await asyncio.gather(*[access.decide("u", f"d{i}", "t", "a") for i in range(200)])

    asyncio.run(many())
    assert pool.reads == 2  # the rules and the blocks, once


def test_the_loop_counter_counts_identical_requests_with_a_body_but_no_pings() -> None:
    pool = FakePool()
    access = DeviceAccess(pool, loop_limit=3)  # type: ignore[arg-type]

    def seen(command: str, body: bytes, query: str = "Cmd=Sync") -> bool:
        return asyncio.run(access.seen("alice@example.com", "DEV1", command, query, body)) is not None

    assert [seen("Ping", b"same") for _ in range(10)] == [False] * 10
    assert [seen("Sync", b"") for _ in range(10)] == [False] * 10
    assert [seen("Sync", b"a"), seen("Sync", b"b"), seen("Sync", b"a", "Cmd=Sync&x=1")] == [False] * 3
    assert [seen("Sync", b"same") for _ in range(4)] == [False, False, False, True]
    assert len(pool.executed) == 1 and "device_blocks" in pool.executed[0][0]
