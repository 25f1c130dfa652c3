"""usm.outgoing on the real database: records older than a month are pruned, recent ones kept."""

from __future__ import annotations

import asyncio

from usm import database, outgoing


def test_finishing_a_message_prunes_the_devices_old_sent_records(database_url: str) -> None:
    async def run() -> list[tuple[str, str]]:
        pool = await database.connect(database_url, min_size=1, max_size=1)
        try:
            async with pool.acquire() as conn:
                await conn.execute("INSERT INTO devices (user_name, device_id, device_type) VALUES"
                                   " ('prune@example.com', 'P1', 't'), ('prune@example.com', 'P2', 't')"
                                   " ON CONFLICT DO NOTHING")
                for device, client_id, state, age in (("P1", "old-sent", "sent", "40 days"),
                                                      ("P1", "old-sending", "sending", "40 days"),
                                                      ("P1", "recent-sending", "sending", "2 days"),
                                                      ("P1", "recent-sent", "sent", "2 days"),
                                                      ("P2", "other-device", "sent", "40 days")):
                    await outgoing.begin(conn, "prune@example.com", device, client_id)
                    await conn.execute(
                        "UPDATE outgoing_mail SET state = $3,"
                        " sent_at = CASE WHEN $3 = 'sent' THEN now() - $4::text::interval END,"
                        " created_at = now() - $4::text::interval WHERE user_name = 'prune@example.com'"
                        " AND device_id = $1 AND client_id = $2", device, client_id, state, age)
                await outgoing.begin(conn, "prune@example.com", "P1", "new")
                await outgoing.finish(conn, "prune@example.com", "P1", "new")
                rows = await conn.fetch("SELECT device_id, client_id FROM outgoing_mail"
                                        " WHERE user_name = 'prune@example.com' ORDER BY 1, 2")
                return [(r["device_id"], r["client_id"]) for r in rows]
        finally:
            await pool.close()

    assert asyncio.run(run()) == [("P1", "new"), ("P1", "recent-sending"), ("P1", "recent-sent"),
                                  ("P2", "other-device")]
