#!/usr/bin/env bash
# Create .venv and install kokoyi with the given extras (default: dev).
# torch is installed first at the pinned 2.13.0 (a local CPU wheel here); constraints.txt
# keeps every later step from pulling another torch build.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install -q -c constraints.txt torch==2.13.0
.venv/bin/python -m pip install -q -c constraints.txt -e ".[${extras}]"
