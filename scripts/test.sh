#!/usr/bin/env bash
# Set up .venv and run the default test suite (what CI runs). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/python -m pytest -n 2 -q "$@"
