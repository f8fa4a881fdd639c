"""tests/test_gpu_paths.py's run of benchmarks.gpu_check's SRFT part with vLLM colocate on CPU (vLLM's CPU build).

    python tests/gpu_check_vllm_run.py OUT synced|stale      # prints `RESULT {check: bool}`

`stale` replaces the CPU weight sync by one that only resets vLLM's prefix cache, so the engine keeps the initial
weights: gpu_check must fail it.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import gpu_check  # noqa: E402
from srft_trl import vllm_cpu  # noqa: E402

if __name__ == "__main__":
    out, mode = Path(sys.argv[1]), sys.argv[2]
    if mode == "stale":
        vllm_cpu.sync_weights_on_cpu = lambda generation: generation.llm.reset_prefix_cache()
    model = gpu_check.save_check_model(out / "model", tiny=True)
    result = gpu_check.run_srft(model, out / "run", steps=3, use_vllm=True)
    print("RESULT " + json.dumps(result["checks"]))
