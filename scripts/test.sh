#!/usr/bin/env bash
# Set up (venv + extras) and run the whole test suite against the local Redis.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost
exec .venv/bin/python -m pytest "$@"
