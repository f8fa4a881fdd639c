"""Messages from the libraries below us that a user reads as breakage but cannot act on, handled
precisely: each one named, with the reason it is not the user's problem.

* TRL 1.16 calls transformers' `is_gradient_checkpointing`, `gradient_checkpointing_enable` and
  `gradient_checkpointing_disable` around every generation (`trl.models.utils`), and `GRPOConfig`
  sets the `gradient_checkpointing` field by default; transformers 5 renamed all four to
  `activation_checkpointing*` and warns (FutureWarning) on each use, so every run printed them at
  every generation step. The aliases still work; only TRL can stop calling them. Only these exact
  messages are filtered (`silence_upstream_deprecations`, run on `import srft_trl`).
* transformers' `Trainer` warns "There were missing keys in the checkpoint model loaded:
  ['lm_head.weight']" on every resume of a model with tied embeddings: `save_pretrained` stores a
  tied weight once, and the check only knows the old `_keys_to_ignore_on_save` attribute. The
  weight is loaded, through the tensor it is tied to (tests/test_upstream_noise.py checks that the
  resumed weights equal the saved ones). `TiedWeightsResumeMixin` drops exactly the missing keys
  that share their parameter with a key that was loaded, and lets every other missing key warn.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["CHECKPOINTING_ALIAS_WARNING", "silence_upstream_deprecations", "TiedWeightsResumeMixin",
           "missing_keys_not_tied"]

CHECKPOINTING_ALIAS_WARNING = (
    r"`(is_gradient_checkpointing|gradient_checkpointing_enable|gradient_checkpointing_disable|gradient_checkpointing)`"
    r" is deprecated and will be removed in v6\. Use `(is_activation_checkpointing|activation_checkpointing_enable|"
    r"activation_checkpointing_disable|activation_checkpointing)` instead\."
)


def silence_upstream_deprecations() -> None:
    """Ignore transformers' FutureWarnings about the `gradient_checkpointing*` aliases TRL 1.16 uses."""
    warnings.filterwarnings("ignore", message=CHECKPOINTING_ALIAS_WARNING, category=FutureWarning)


def missing_keys_not_tied(model, missing_keys: list[str]) -> list[str]:
    """The missing keys that are really missing: a key whose parameter is the same tensor as a key
    that was loaded (a tied `lm_head.weight`) was loaded through that key."""
    names_by_tensor: dict[int, set[str]] = {}
    for name, parameter in model.named_parameters(remove_duplicate=False):
        names_by_tensor.setdefault(id(parameter), set()).add(name)
    missing = set(missing_keys)
    really = []
    for key in missing_keys:
        aliases = next((names for names in names_by_tensor.values() if key in names), {key})
        if not (aliases - missing):
            really.append(key)
    return really


class TiedWeightsResumeMixin:
    """Put before a `transformers.Trainer` subclass: no missing-keys warning for tied weights on resume."""

    def _issue_warnings_after_load(self, load_result: Any) -> None:
        missing = list(getattr(load_result, "missing_keys", []) or [])
        if missing and hasattr(load_result, "_replace"):
            load_result = load_result._replace(missing_keys=missing_keys_not_tied(self.model, missing))
        super()._issue_warnings_after_load(load_result)
