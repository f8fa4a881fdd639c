"""Analysis toolkit: the instruments of Section 3 of the SRFT paper, for any causal LMs transformers loads.

* `token_shift`: per-token probability change of tuned models versus a base model (Fig. 2, A1);
* `trajectory`: checkpoints placed by their distances to reference models (Fig. 3, App. E), with
  `distance` / `model_distance` for the underlying distance D_S(A, B);
* `dynamics`: reward, length, entropy, w_SFT and w_RL curves from `trainer_state.json` (Fig. 4, 6);
* `score_examples` / `score_encoded`: the batched, memory-aware per-token log-prob scorer they share.

The same analyses are the `srft-trl analyze token-shift | trajectory | dynamics` commands
(`srft_trl.analysis.cli.main`). See docs/analysis.md.
"""

from .dynamics import (
    DEFAULT_METRICS,
    METRIC_KEYS,
    DynamicsResult,
    dynamics,
    find_trainer_state,
    load_log_history,
    metric_curve,
)
from .generation import GenerationSettings, generate_responses
from .models import expand_checkpoints, load_model, loaded, model_label
from .scoring import (
    EncodedExample,
    Example,
    TokenScores,
    as_examples,
    encode_examples,
    load_examples,
    score_encoded,
    score_examples,
)
from .token_shift import ResponseShift, ShiftComparison, TokenShiftResult, shift_summary, token_shift
from .trajectory import (
    METRICS,
    TrajectoryPoint,
    TrajectoryResult,
    TrajectorySeries,
    distance,
    model_distance,
    response_distances,
    trajectory,
)

__all__ = [
    "DEFAULT_METRICS",
    "METRICS",
    "METRIC_KEYS",
    "DynamicsResult",
    "EncodedExample",
    "Example",
    "GenerationSettings",
    "ResponseShift",
    "ShiftComparison",
    "TokenScores",
    "TokenShiftResult",
    "TrajectoryPoint",
    "TrajectoryResult",
    "TrajectorySeries",
    "as_examples",
    "distance",
    "dynamics",
    "encode_examples",
    "expand_checkpoints",
    "find_trainer_state",
    "generate_responses",
    "load_examples",
    "load_log_history",
    "load_model",
    "loaded",
    "metric_curve",
    "model_distance",
    "model_label",
    "response_distances",
    "score_encoded",
    "score_examples",
    "shift_summary",
    "token_shift",
    "trajectory",
]
