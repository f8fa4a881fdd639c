"""Train SRFT for a few steps and save the final parameters: run by tests/test_distributed.py.

Launched either as a plain process or with `accelerate launch` on two CPU processes, so both runs
see the same global batch (generation is greedy, the optimiser SGD) and must end with the same weights.
"""

import argparse
import os
from pathlib import Path

import torch

torch.set_num_threads(1)

from helpers import arithmetic_dataset, boxed_reward, config
from srft_trl import SRFTTrainer
from srft_trl.tiny import build_tiny_model, build_tiny_tokenizer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--per_device_train_batch_size", type=int, required=True)
    parser.add_argument("--fail_on_rank", type=int, default=None)
    cli = parser.parse_args()

    def reward(completions, solution, **kwargs):
        if cli.fail_on_rank is not None and int(os.environ.get("RANK", 0)) == cli.fail_on_rank:
            raise RuntimeError(f"injected failure on rank {cli.fail_on_rank}")
        return boxed_reward(completions, solution)

    tokenizer = build_tiny_tokenizer()
    args = config(
        Path(cli.out),
        num_generations=8,
        num_demos=2,
        per_device_train_batch_size=cli.per_device_train_batch_size,
        max_completion_length=40,
        max_steps=2,
        learning_rate=0.5,
        optim="sgd",
        generation_kwargs={"do_sample": False},
        ddp_find_unused_parameters=False,
    )
    trainer = SRFTTrainer(model=build_tiny_model(tokenizer, seed=0), reward_funcs=reward, args=args,
                          train_dataset=arithmetic_dataset(16), processing_class=tokenizer)
    trainer.train()
    if trainer.accelerator.is_main_process:
        parameters = torch.cat([p.detach().flatten() for p in trainer.accelerator.unwrap_model(trainer.model).parameters()])
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        torch.save({"parameters": parameters, "losses": losses, "processes": trainer.accelerator.num_processes},
                   os.path.join(cli.out, "result.pt"))


if __name__ == "__main__":
    main()
