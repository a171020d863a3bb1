#!/usr/bin/env bash
# Set up (venv + extras, the ledger's PostgreSQL role) and run the whole test suite against the local
# Redis and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/setup_db.sh  # the ledger tests' PostgreSQL role and database (idempotent)
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
exec .venv/bin/python -m pytest "$@"
