"""srft-trl: SRFT (Supervised Reinforcement Fine-Tuning, arXiv 2506.19767) as a drop-in TRL trainer."""

from .config import METHOD_PRESETS, SRFTConfig
from .trainer import SRFTTrainer

__version__ = "0.1.0"
__all__ = ["METHOD_PRESETS", "SRFTConfig", "SRFTTrainer", "__version__"]
