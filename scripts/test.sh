#!/usr/bin/env bash
# Set up (venv + extras, the ledger's PostgreSQL role) and run the whole test suite against the local
# Redis and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/setup_db.sh  # the ledger tests' PostgreSQL role and database (idempotent)
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
# the browser check (tests/browser/) drives Debian's chromium: installed here when missing and possible (root, apt-get)
command -v chromium >/dev/null || { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null && { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1; }; }; } || echo "scripts/test.sh: chromium is missing and could not be installed (needs root and apt-get): the browser check will be skipped" >&2
exec .venv/bin/python -m pytest "$@"
