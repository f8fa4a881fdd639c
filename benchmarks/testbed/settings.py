"""Testbed settings: the full study and the `--quick` smoke run, and the held-out sets they define."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

from .base import BaseSettings
from srft_trl.tasks.digit_chains import Problem, take, unique_stream


@dataclass(frozen=True)
class TestbedSettings:
    # Families by number of terms. The base (sloppy running sums for 2-5 terms, base.py) solves ~16% of 4-5-term
    # chains at the evaluation temperature and ~1.5% of 6-term chains (measured on 200 problems per length outside
    # the study's problems, before any method was run); 3-term chains are too few to hold out 500 without repeats.
    id_terms: tuple[int, ...] = (4, 5)  # in-distribution family, alternating lengths: partly competent
    zero_terms: tuple[int, ...] = (6,)  # the ~0% family: trained on, one term beyond the base's pre-training
    ood_terms: tuple[int, ...] = (7,)  # never trained on by any method: one term longer than the ~0% family
    test_size: int = 500  # per family: standard error <= 2.2 points (2.24 at 50%)
    val_size: int = 200  # per trained family, used only to choose learning rates
    steps: int = 100  # optimiser steps, every method
    prompts_per_step: int = 8  # problems per step, every method (half ID, half ~0% family)
    num_generations: int = 4  # group: 4 rollouts, or 3 rollouts + 1 demonstration (8 would double the CPU time)
    max_completion_length: int = 80  # the longest 6-term demonstration is 67 tokens with EOS
    eval_max_new_tokens: int = 96  # 7 terms: at most 75
    eval_temperature: float = 0.6  # the paper's evaluation temperature; one sample per problem (its pass@1)
    sft_curve_points: int = 4  # validation accuracy this many times during each SFT run
    regime: str = "default"  # a name for the settings below (README: "Regimes"); part of the key
    # Run selection (not part of a run's key). A paired unit is (base seed, training seed): every method runs on the
    # same units, so every comparison is a paired difference over them (stats.py).
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    base_seeds: tuple[int, ...] = (0, 1)  # independently pre-trained bases (BaseSettings.seed)
    methods: tuple[str, ...] = ("sft", "grpo", "grpo_sft", "sft_grpo", "luffy", "srft", "srft_hpt",
                                "srft_grpo_rollouts", "srft_imitation", "srft_no_wsft", "srft_no_wrl",
                                "srft_param_grads")
    # The starting grid of every sweep (a factor of ~3 between points). A sweep whose best rate is at an edge is
    # extended by the next rate beyond it (x or / sweep_factor) until the best is bracketed (__main__.pick_or_extend).
    sweep_lrs: tuple[float, ...] = (3e-5, 1e-4, 3e-4, 1e-3)
    sweep_factor: float = 3.0
    max_sweep_extensions: int = 3  # per side: a sweep that still sits at an edge after this is reported as such
    workers: int = 2
    base: BaseSettings = field(default_factory=BaseSettings)

    def run_key(self) -> str:
        """Hash of everything that shapes a run's result (not which runs are selected)."""
        selection = ("seeds", "base_seeds", "methods", "sweep_lrs", "sweep_factor", "max_sweep_extensions", "workers")
        shaping = {k: v for k, v in asdict(self).items() if k not in selection}
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:10]

    def for_base(self, base_seed: int) -> "TestbedSettings":
        """These settings on the base pre-trained with `base_seed` (its own key, so its own run files)."""
        return replace(self, base=replace(self.base, seed=base_seed))

    def to_dict(self) -> dict:
        return asdict(self)


FULL = TestbedSettings()

# A regime where RL has signal (issue 21): a stronger base (its teacher drops a carry 20% of the time instead of 50%)
# and groups of 8, so the base's ID rollouts succeed about 30-60% of the time (pilot: benchmarks/testbed/pilot.py,
# numbers in the README). Same families, sizes, steps and budget; fewer rows (the main comparison) to fit the time.
SIGNAL = replace(
    FULL,
    regime="signal",
    num_generations=8,
    base=replace(FULL.base, carry_slip=0.3),
    methods=("sft", "grpo", "grpo_sft", "srft", "srft_hpt", "srft_imitation", "srft_param_grads"),
)

REGIMES = {"default": FULL, "signal": SIGNAL}

QUICK = replace(
    FULL,
    test_size=40,
    val_size=20,
    steps=3,
    prompts_per_step=2,
    sft_curve_points=1,
    seeds=(0,),
    base_seeds=(0,),
    methods=("sft", "grpo", "srft"),
    sweep_lrs=(3e-4,),
    max_sweep_extensions=0,
    base=replace(FULL.base, steps=30),
)


@lru_cache(maxsize=8)
def heldout_sets(settings: TestbedSettings) -> dict[str, dict[str, list[Problem]]]:
    """`{"test": {"id", "zero", "ood"}, "val": {"id", "zero"}}`, disjoint from each other and from training."""
    terms = {"id": settings.id_terms, "zero": settings.zero_terms, "ood": settings.ood_terms}
    test = {fam: take(unique_stream(100 + k[0], k), settings.test_size) for fam, k in terms.items()}
    used = {p.question for ps in test.values() for p in ps}
    val = {fam: take(unique_stream(200 + terms[fam][0], terms[fam], used), settings.val_size) for fam in ("id", "zero")}
    return {"test": test, "val": val}


def heldout_questions(settings: TestbedSettings) -> set[str]:
    return {p.question for split in heldout_sets(settings).values() for ps in split.values() for p in ps}


def train_problems(settings: TestbedSettings, seed: int, n: int) -> list[Problem]:
    """The first `n` problems of seed `seed`'s training stream: ID and ~0% family alternating, all distinct,
    none held out. Every method with this seed sees the same problems."""
    exclude = heldout_questions(settings)
    streams = [unique_stream(1000 + 7 * seed + k[0], k, exclude) for k in (settings.id_terms, settings.zero_terms)]
    return [next(streams[i % 2]) for i in range(n)]
