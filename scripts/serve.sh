#!/usr/bin/env bash
# Starts the gateway on embedded defaults on a fresh Debian machine: creates
# .venv, installs the project, starts a local demo upstream (Cyrus, users
# alice@example.com/alice and bob@example.com/bob; scripts/cyrus-upstream.sh)
# gives its users demo mails, contacts, events, tasks and notes (scripts/demo-data.py)
# and runs `eas-gateway serve` with the embedded PostgreSQL in ./var.
# Phones (or pyactivesync) then talk to http://HOST:PORT/Microsoft-Server-ActiveSync.
# Extra arguments go to `eas-gateway serve`, e.g.  scripts/serve.sh --host 0.0.0.0
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check -e .

mkdir -p var
upstream_port=${EAS_DEMO_UPSTREAM_PORT:-8580}
cyrus_dir=/var/tmp/eas-gateway-demo-cyrus   # Cyrus runs as user cyrus: not under a private home
bash scripts/cyrus-upstream.sh start "$cyrus_dir" "$upstream_port"
# A few mails, contacts, events, tasks and notes for each demo user (once).
.venv/bin/python scripts/demo-data.py --upstream "http://127.0.0.1:$upstream_port" \
    --lmtp "$cyrus_dir/socket/lmtp" --marker "$cyrus_dir/demo-seeded"

export EAS_UPSTREAM=${EAS_UPSTREAM:-http://127.0.0.1:$upstream_port}
# Debian's Cyrus has no JMAP push: the gateway idles on its IMAP service (HTTP port + 1).
export EAS_IMAP_IDLE=${EAS_IMAP_IDLE:-imap://127.0.0.1:$((upstream_port + 1))}
exec .venv/bin/eas-gateway serve --state-dir var "$@"
