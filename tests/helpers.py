"""Small builders shared by the trainer tests: a dataset, a fast reward, a config, a trainer."""

from datasets import Dataset


def arithmetic_rows(n: int = 8, conversational: bool = True):
    """`n` tiny problems with a demonstration and a gold answer."""
    rows = []
    for i in range(n):
        a, b = i % 5, (3 * i) % 7
        prompt = f"Compute {a}+{b}."
        rows.append(
            {
                "prompt": [{"role": "user", "content": prompt}] if conversational else prompt,
                "demo": f"<think>\n{a}+{b}={a + b}\n</think>\n\\boxed{{{a + b}}}",
                "solution": str(a + b),
            }
        )
    return rows


def arithmetic_dataset(n: int = 8, conversational: bool = True) -> Dataset:
    return Dataset.from_list(arithmetic_rows(n, conversational))


def boxed_reward(completions, solution, **kwargs):
    """1.0 when the completion contains `\\boxed{gold}` (exact match; fast and process-free for tests)."""
    texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
    return [1.0 if f"\\boxed{{{gold}}}" in text else 0.0 for text, gold in zip(texts, solution)]


def config(tmp_path, **overrides):
    from srft_trl import SRFTConfig

    values = dict(
        output_dir=str(tmp_path / "out"),
        num_generations=4,
        per_device_train_batch_size=8,
        max_completion_length=40,
        max_steps=2,
        learning_rate=1e-3,
        logging_steps=1,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        seed=0,
        log_completions=False,
    )
    values.update(overrides)
    return SRFTConfig(**values)


def trainer(tmp_path, model, tokenizer, dataset=None, reward=boxed_reward, **overrides):
    from srft_trl import SRFTTrainer

    return SRFTTrainer(
        model=model,
        reward_funcs=reward,
        args=config(tmp_path, **overrides),
        train_dataset=dataset if dataset is not None else arithmetic_dataset(),
        processing_class=tokenizer,
    )
