"""srft-trl: SRFT (Supervised Reinforcement Fine-Tuning, arXiv 2506.19767) as a drop-in TRL trainer.

The trainer and config are imported on first use, so `srft-trl --help` and light submodules
(`srft_trl.data`, `srft_trl.grading`) do not pay for importing TRL.
"""

__version__ = "0.1.0"
__all__ = ["METHOD_PRESETS", "SRFTConfig", "SRFTTrainer", "__version__"]

_LAZY = {"SRFTConfig": "config", "METHOD_PRESETS": "config", "SRFTTrainer": "trainer"}

from .upstream_noise import silence_upstream_deprecations  # noqa: E402  (TRL 1.16 x transformers 5 aliases)

silence_upstream_deprecations()


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module 'srft_trl' has no attribute {name!r}")
