#!/usr/bin/env bash
# The whole test suite, from a clean checkout: sets up .venv, then runs pytest (CPU, no network).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck disable=SC1091
. "$ROOT/scripts/setup_env.sh"
cd "$ROOT"
python -m pytest "$@"
