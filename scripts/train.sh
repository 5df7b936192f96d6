#!/usr/bin/env bash
# Set up .venv and train the seed's CartPole policy-gradient agent with the compiled Kokoyi modules.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh examples
.venv/bin/python examples/policy_gradient/train.py --out runs/policy_gradient "$@"
