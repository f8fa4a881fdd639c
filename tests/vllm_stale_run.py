"""The negative control of tests/test_gpu_paths.py: the tiny recipe with vLLM colocate on CPU, its weight sync allowed
once (step 0) and then switched off, so vLLM keeps generating from the initial weights while the model trains.

    python tests/vllm_stale_run.py OUTPUT_DIR      # prints the per-step sampling_logp_difference/max as JSON
"""

import json
import sys

from transformers import AutoTokenizer

from srft_trl import data
from srft_trl.models import prepare_model_path
from srft_trl.recipes import parse_args
from srft_trl.train import build_trainer


def main(output_dir: str) -> None:
    args = parse_args(["--config", "srft_tiny_cpu", "--use_vllm", "true", "--vllm_gpu_memory_utilization", "0.05",
                       "--max_steps", "4", "--logging_steps", "1", "--learning_rate", "3e-2", "--eval_split", "none",
                       "--output_dir", output_dir])
    model_path = prepare_model_path(args.script, args.training, args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    train_dataset, _ = data.build_datasets(args.script, args.training, tokenizer, args.training.demo_column,
                                           log=lambda *a, **k: None)
    trainer = build_trainer(args, model_path, tokenizer, train_dataset)
    sync = trainer.vllm_generation.sync_weights
    calls = []

    def first_sync_only():
        calls.append(1)
        if len(calls) == 1:
            sync()

    trainer.vllm_generation.sync_weights = first_sync_only
    trainer.train()
    history = [entry for entry in trainer.state.log_history if "loss" in entry]
    print(json.dumps([entry["sampling/sampling_logp_difference/max"] for entry in history]))


if __name__ == "__main__":
    main(sys.argv[1])
