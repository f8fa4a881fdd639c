"""The model card of a run: what was trained from what, how, and how it ended.

TRL's card template assumes a Hub base model, a Hub dataset and a Hub repository; for a local
model it writes `[None](https://huggingface.co/None)` and `model="None"`, leaves "Training
procedure" empty without a tracker, and carries `licence: license`. The card written here keeps
TRL's metadata tags and its citations, and names the base model (Hub id or local path), the
dataset, the method and its preset, the effective settings, the command line and the final metrics.

`install_model_card` wraps the trainer's `create_model_card`, so every card the trainer writes
(each checkpoint save, the end of training, `push_to_hub`) is this one.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Sequence

CARD_MARKER = "<!-- srft-trl: recipe and metrics -->"

# Settings worth a line in "Training procedure" (the whole recipe follows in "Training recipe").
KEY_SETTINGS = (
    "method", "num_generations", "num_demos", "learning_rate", "max_steps", "num_train_epochs",
    "per_device_train_batch_size", "gradient_accumulation_steps", "max_completion_length", "temperature",
    "sft_weighting", "sft_coef", "demo_rl", "rollout_loss", "rl_weighting", "rl_coef", "entropy_granularity",
    "max_entropy_weight", "beta", "loss_type", "use_peft", "lora_r",
)


def final_metrics(trainer, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The last logged value of every training metric, the run summary, and `extra`."""
    metrics: dict[str, Any] = {}
    for entry in trainer.state.log_history:
        metrics.update({k: v for k, v in entry.items() if isinstance(v, (int, float)) and k not in ("epoch", "step")})
    if trainer.state.global_step:
        metrics["global_step"] = trainer.state.global_step
    metrics.update(extra or {})
    return metrics


def _is_hub_id(reference: str | None) -> bool:
    text = str(reference or "")
    return bool(text) and " " not in text and text.count("/") <= 1 and not Path(text).expanduser().exists()


def _reference(kind: str, reference: str | None) -> str:
    """`[org/x](https://huggingface.co/org/x)` for a Hub id, the path in backticks for a local one."""
    if not reference:
        return f"an unnamed {kind}"
    if " " in str(reference):  # a description, e.g. "tiny_math (shipped with srft-trl)"
        return str(reference)
    if _is_hub_id(reference):
        prefix = "datasets/" if kind == "dataset" else ""
        return f"[{reference}](https://huggingface.co/{prefix}{reference})"
    return f"the local {kind} `{reference}`"


def _method(trainer, settings: dict[str, Any]) -> str:
    args = trainer.args
    method = getattr(args, "method", None)
    if method is None:
        return f"{getattr(trainer, '_name', type(trainer).__name__)} (TRL's {type(trainer).__name__})"
    preset = f"the `{method}` preset of `SRFTConfig.method`"
    return f"{trainer._name} ({preset}; {args.num_generations - args.num_demos} rollouts + {args.num_demos} demonstration(s) per group)"


def _value(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def card_text(trainer, *, model_name: str, base_model: str | None, dataset: str | None, recipe_text: str,
              overrides: Sequence[str], metrics: dict[str, Any], settings: dict[str, Any] | None = None) -> str:
    """The card's Markdown body (the YAML metadata is set by `write_model_card`)."""
    settings = dict(settings or {})
    for key in KEY_SETTINGS:  # the trainer's own config, where the recipe did not say
        if key not in settings and hasattr(trainer.args, key):
            settings[key] = getattr(trainer.args, key)
    location = trainer.hub_model_id or str(Path(trainer.args.output_dir).resolve())
    paper = getattr(trainer, "_paper", {}) or {}
    rows = "\n".join(f"| {k} | {_value(v)} |" for k, v in metrics.items())
    if (settings.get("max_steps") or 0) > 0:
        settings.pop("num_train_epochs", None)  # max_steps wins
    key_rows = "\n".join(f"| {k} | {_value(settings[k])} |" for k in KEY_SETTINGS if settings.get(k) is not None)
    command = "srft-trl train --config recipe.yaml" + "".join(f" {t}" for t in overrides)
    paper_line = ""
    if paper.get("id"):
        paper_line = f" The method was introduced in [{paper.get('title')}](https://huggingface.co/papers/{paper['id']})."
    citation = f"Cite {trainer._name} as:\n\n```bibtex\n{paper['citation']}\n```\n\n" if paper.get("citation") else ""
    return f"""# Model Card for {model_name}

This model is a fine-tuned version of {_reference("model", base_model)}, trained on {_reference("dataset", dataset)}
with {_method(trainer, settings)}, using srft-trl on [TRL](https://github.com/huggingface/trl).

## Quick start

```python
from transformers import pipeline

generator = pipeline("text-generation", model="{location}")
output = generator([{{"role": "user", "content": "What is 12 * 7?"}}], max_new_tokens=256, return_full_text=False)[0]
print(output["generated_text"])
```

## Training procedure

Trained with {_method(trainer, settings)} for {trainer.state.global_step} steps.{paper_line} Key settings (all of them
are in the recipe below):

| setting | value |
|---|---|
{key_rows}

{CARD_MARKER}
## Training recipe

```bash
{command}
```

`recipe.yaml`:

```yaml
{recipe_text.rstrip()}
```

## Final metrics

| metric | value |
|---|---|
{rows}

## Citations

{citation}Cite TRL as:

```bibtex
@software{{vonwerra2020trl,
  title   = {{{{TRL: Transformers Reinforcement Learning}}}},
  author  = {{von Werra, Leandro and Belkada, Younes and Tunstall, Lewis and Beeching, Edward and Thrush, Tristan and Lambert, Nathan and Huang, Shengyi and Rasul, Kashif and Gallouédec, Quentin}},
  license = {{Apache-2.0}},
  url     = {{https://github.com/huggingface/trl}},
  year    = {{2020}}
}}
```
"""


def write_model_card(path: str | os.PathLike, trainer, *, model_name: str, base_model: str | None,
                     dataset: str | None, recipe_text: str, overrides: Sequence[str], metrics: dict[str, Any],
                     settings: dict[str, Any] | None = None) -> None:
    """Write the card to `path`, keeping the tags of the card TRL wrote there."""
    from huggingface_hub import ModelCard, ModelCardData

    path = Path(path)
    tags = ModelCard.load(path).data.tags if path.is_file() else None
    data = ModelCardData(
        base_model=base_model if _is_hub_id(base_model) else None,
        datasets=[dataset] if _is_hub_id(dataset) else None,
        library_name="transformers",
        model_name=model_name,
        pipeline_tag="text-generation",
        tags=tags or ["generated_from_trainer", *getattr(trainer, "_tag_names", [])],
    )
    text = card_text(trainer, model_name=model_name, base_model=base_model, dataset=dataset, recipe_text=recipe_text,
                     overrides=overrides, metrics=metrics, settings=settings)
    ModelCard(f"---\n{data.to_yaml()}\n---\n\n{text}").save(path)


def install_model_card(trainer, *, recipe_text: str, overrides: Sequence[str], base_model: str | None,
                       extra_metrics: dict[str, Any], dataset: str | None = None,
                       settings: dict[str, Any] | None = None) -> None:
    """Make every model card the trainer writes (checkpoints, end of training, `push_to_hub`) this
    module's card, with the metrics so far, by wrapping its `create_model_card`."""
    create = trainer.create_model_card

    @functools.wraps(create)
    def create_model_card(model_name: str | None = None, dataset_name: str | None = None, *args, **kwargs):
        create(model_name, dataset_name, *args, **kwargs)  # TRL's card: its tags are kept
        if trainer.is_world_process_zero():
            write_model_card(
                Path(trainer.args.output_dir) / "README.md",
                trainer,
                model_name=model_name or Path(trainer.args.output_dir).name,
                base_model=base_model,
                dataset=dataset or dataset_name,
                recipe_text=recipe_text,
                overrides=overrides,
                metrics=final_metrics(trainer, extra_metrics),
                settings=settings,
            )

    trainer.create_model_card = create_model_card


def settings_recipe(trainer, base_model: str, dataset: str | None, *, peft_config=None, source: str = "") -> str:
    """The settings of a run built in Python (a notebook) as recipe YAML for `install_model_card`: the model,
    the data, LoRA and the trainer's key settings (`KEY_SETTINGS`)."""
    import enum

    import yaml

    recipe: dict[str, Any] = {"model_name_or_path": base_model, "dataset_name": dataset}
    if peft_config is not None:
        recipe.update(use_peft=True, lora_r=peft_config.r, lora_alpha=peft_config.lora_alpha)
    for key in KEY_SETTINGS:
        value = getattr(trainer.args, key, None)
        if value is not None:
            recipe[key] = value.value if isinstance(value, enum.Enum) else value
    header = f"# The settings of {source}, as a recipe\n" if source else ""
    return header + yaml.safe_dump(recipe, sort_keys=False)
