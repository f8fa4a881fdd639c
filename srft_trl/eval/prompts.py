"""Chat templates for evaluation and the `</think>` policy that goes with each.

Templates (selected by name):

* `srft`: the paper's training template (App. B, Fig. A3) as the system message, the question
  as the user message, rendered with the model's chat template. It is the template the paper's
  models were trained and evaluated with.
* `qwen_math`: the Qwen2.5-Math chain-of-thought system prompt ("Please reason step by step, and
  put your final answer within \\boxed{}.").
* `own`: the question as the only user message, with whatever default the model's own chat
  template adds.
* `none`: the raw question text, no chat template (Table A1's "No Template" row).
"""

from __future__ import annotations

from .benchmarks import Item
from .choices import format_mc_question

__all__ = ["TEMPLATES", "QWEN_MATH_COT_SYSTEM_PROMPT", "build_messages", "render_prompt", "require_think"]

QWEN_MATH_COT_SYSTEM_PROMPT = "Please reason step by step, and put your final answer within \\boxed{}."
TEMPLATES = ("srft", "qwen_math", "own", "none")
THINK_POLICIES = ("auto", "require", "optional")


def _system_prompt(template: str) -> str | None:
    if template == "srft":
        from srft_trl.data import SRFT_SYSTEM_PROMPT  # lazy: the data module is optional here

        return SRFT_SYSTEM_PROMPT
    if template == "qwen_math":
        return QWEN_MATH_COT_SYSTEM_PROMPT
    return None


def question_text(item: Item) -> str:
    """The question as shown to the model (with lettered options for multiple choice)."""
    return format_mc_question(item.question, item.options) if item.kind == "mc" else item.question


def build_messages(item: Item, template: str) -> list[dict[str, str]]:
    """The conversation for `item` under a chat `template` (`srft`, `qwen_math` or `own`)."""
    if template not in TEMPLATES or template == "none":
        raise ValueError(f"no messages for template {template!r}; chat templates: srft, qwen_math, own")
    system = _system_prompt(template)
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question_text(item)})
    return messages


def render_prompt(item: Item, template: str, tokenizer) -> str:
    """The exact prompt string sent to the model, ending with the assistant's generation prompt."""
    if template == "none":
        return question_text(item)
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(f"template {template!r} needs a tokenizer with a chat template (or use --template none)")
    from ..generation import render_prompt as render_messages

    return render_messages(tokenizer, build_messages(item, template))


def require_think(template: str, policy: str = "auto") -> bool:
    """Whether a response must close its reasoning with `</think>` to be graded.

    `require` matches the training reward (no `</think>`, no credit; the answer is read after
    it); `optional` reads after the last `</think>` when there is one and the whole response
    otherwise; `auto` requires it for the `srft` template, which asks for the tag, and not for
    the others, which do not.
    """
    if policy not in THINK_POLICIES:
        raise ValueError(f"think policy must be one of {THINK_POLICIES}, got {policy!r}")
    if policy == "auto":
        return template == "srft"
    return policy == "require"
