#!/usr/bin/env bash
# Set up .venv and run the default test suite (what CI runs). Extra args go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
# the VS Code grammar test's node packages (vscode-textmate, vscode-oniguruma), from the lock file
if command -v npm >/dev/null; then
    (cd editors/vscode && npm ci --no-audit --no-fund --loglevel=error)
fi
.venv/bin/python -m pytest -n 2 -q "$@"
