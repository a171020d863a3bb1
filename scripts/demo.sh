#!/usr/bin/env bash
# Set up (venv + extras) and run the demo day; extra arguments go to `main.py demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/python main.py demo "$@"
