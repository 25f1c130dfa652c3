"""Table care where autovacuum is off (usm.table_care), on the real databases: the machine's
server runs with autovacuum off, the embedded one with it on."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.usm.collections import new_collection
from usm import database, table_care

pytestmark = pytest.mark.postgres

LOOKUP = ("EXPLAIN (FORMAT JSON) SELECT item, upstream_id, version FROM collection_items WHERE user_name = $1"
          " AND device_id = $2 AND collection_id = $3 AND upstream_id = ANY($4::text[])")


def _index_conditions(plan: dict) -> list[str]:  # type: ignore[type-arg]
    found = [plan["Index Cond"]] if "Index Cond" in plan else []
    for child in plan.get("Plans", []):
        found += _index_conditions(child)
    return found


def test_a_grown_collection_is_analyzed_so_that_a_lookup_by_upstream_id_uses_the_index(database_url: str) -> None:
    """2,000 items in one collection: once cared for, the lookup of a page's ids descends the
    (collection, upstream id) index instead of reading the collection's items whole; and the
    table is not cared for again until it changes."""
    async def run() -> tuple[list[table_care.Care], list[str], list[table_care.Care], str, bool]:
        pool = await database.connect(database_url, min_size=1, max_size=2)
        try:
            async with pool.acquire() as conn:
                key = await new_collection(conn, upstream_state="s", next_item=2001,
                                           added=[(n, f"M{n:06}", "") for n in range(1, 2001)])
                autovacuum = await conn.fetchval("SELECT current_setting('autovacuum')")
            done: list[table_care.Care] = []
            for _ in range(50):  # (a backend reports its counts to the statistics within a second or so)
                done += await table_care.care_once(pool)
                if any(c.table == "collection_items" for c in done):
                    break
                await asyncio.sleep(0.1)
            async with pool.acquire() as conn:
                [explained] = json.loads(await conn.fetchval(LOOKUP, *key, ["M000007", "M001500"]))
                again = await table_care.needed(conn)
            # Half the items deleted: dead rows to clear away (VACUUM, and ANALYZE: they changed).
            async with pool.acquire() as conn:
                await conn.execute("DELETE FROM collection_items WHERE user_name = $1 AND device_id = $2"
                                   " AND collection_id = $3 AND item <= 1000", *key)
            vacuumed: list[table_care.Care] = []
            for _ in range(50):
                vacuumed += [c for c in await table_care.care_once(pool) if c.table == "collection_items"]
                if vacuumed:
                    break
                await asyncio.sleep(0.1)
            assert vacuumed and vacuumed[0].vacuum and vacuumed[0].analyze, vacuumed
            care = table_care.TableCare(pool)
            await care.start()
            running = care._task is not None
            await care.stop()
            return done, _index_conditions(explained["Plan"]), again, autovacuum, running
        finally:
            await pool.close()

    done, conditions, again, autovacuum, running = asyncio.run(run())
    items = [c for c in done if c.table == "collection_items"]
    assert items and items[0].analyze
    assert any("upstream_id" in c for c in conditions), conditions
    assert "collection_items" not in {c.table for c in again}
    assert running == (autovacuum == "off")  # the task runs only where autovacuum does not
