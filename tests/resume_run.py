"""A short SRFT run that saves every step: run by tests/test_resume.py, which kills and resumes it."""

import argparse
import os
import time
from pathlib import Path

import torch

torch.set_num_threads(1)

from helpers import arithmetic_dataset, boxed_reward, config
from srft_trl import SRFTTrainer
from srft_trl.tiny import build_tiny_model, build_tiny_tokenizer


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--step_delay", type=float, default=0.0, help="seconds to sleep in the reward (to be killed)")
    cli = parser.parse_args()

    def reward(completions, solution, **kwargs):
        time.sleep(cli.step_delay)
        return boxed_reward(completions, solution)

    tokenizer = build_tiny_tokenizer()
    args = config(Path(cli.out), max_steps=5, save_strategy="steps", save_steps=1, max_completion_length=40,
                  generation_kwargs={"do_sample": False})
    trainer = SRFTTrainer(model=build_tiny_model(tokenizer, seed=0), reward_funcs=reward, args=args,
                          train_dataset=arithmetic_dataset(16), processing_class=tokenizer)
    trainer.train(resume_from_checkpoint=True if cli.resume else None)
    parameters = torch.cat([p.detach().flatten() for p in trainer.model.parameters()])
    torch.save(parameters, os.path.join(cli.out, "final.pt"))


if __name__ == "__main__":
    main()
