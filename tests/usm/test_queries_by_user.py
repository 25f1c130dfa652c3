"""Every query of the request path names the user (issue 16 item 6): the tables that hold a
user's state are keyed by user_name first, so that they can be distributed or partitioned by
user (e.g. Citus, hash-distributed on user_name) and a request touches one shard. This test
reads the SQL of usm/ and fails on a statement over such a table that does not filter by
user_name. The exceptions are named with their reason."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Tables of one user's state (sql/*.sql: each has user_name first in its primary key).
USER_TABLES = {"devices", "folder_ids", "folder_sync", "device_folders", "collections", "collection_items",
               "collection_pending", "outgoing_mail", "collection_client_ids", "item_failures", "moved_items",
               "sign_in_failures", "device_blocks", "protocol_trace"}
# Modules off the request path: what an admin runs by hand (and may run across users), and
# migrations.
OFF_PATH = {"admin.py", "database.py"}
# Statements that look at every user on purpose, and why.
ALLOWED = {
    # usm/access.py: a node reads every current block every EAS_ACCESS_RELOAD_SECONDS, not per
    # request; the admin's list of them (CLI, page) is the same statement.
    "FROM device_blocks WHERE until > now()",
    # usm/signin.py: after a wrong password, old failure rows of everyone are removed in one sweep.
    "DELETE FROM sign_in_failures WHERE last_failure <",
    # usm/folders.py: a lock per user (its key is the user), no statement over the table.
    "SELECT pg_advisory_xact_lock(hashtext('folder_ids:' || $1))",
}
_STATEMENT = re.compile(r"\b(SELECT|INSERT INTO|UPDATE|DELETE FROM)\b", re.I)


def statements() -> list[tuple[str, int, str]]:
    out = []
    for path in sorted((ROOT / "usm").rglob("*.py")):
        if path.name in OFF_PATH:
            continue
        tree = ast.parse(path.read_text())
        parts_of_fstrings = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            if isinstance(node, ast.JoinedStr):  # f"UPDATE devices SET {column} = ... WHERE user_name = $1"
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in parts_of_fstrings:
                text = node.value
            else:
                continue
            if _STATEMENT.search(text):
                out.append((str(path.relative_to(ROOT)), node.lineno, text))
    return out


def test_every_statement_over_a_users_state_names_the_user() -> None:
    found = statements()
    assert len(found) > 50  # the parser sees the queries (a test that cannot fail is none)
    missing = []
    for where, line, sql in found:
        tables = {t for t in USER_TABLES if re.search(rf"\b{t}\b", sql)}
        if tables and "user_name" not in sql and not any(a in sql for a in ALLOWED):
            missing.append(f"{where}:{line}: {' '.join(sql.split())[:120]}")
    assert not missing, "statements over a user's state without user_name:\n" + "\n".join(missing)
