"""Build the quickstart's shipped files, `srft_trl/resources/digit_chains/`: a small pre-trained base
and the digit-chain data SRFT trains it on.

    python scripts/build_quickstart_base.py              # base (about 5 min on one core) and data
    python scripts/build_quickstart_base.py --data-only  # only train.jsonl / test.jsonl

* `base/`: the testbed's base model (`benchmarks.testbed.base.pretrain` with the study's settings,
  `benchmarks.testbed.settings.FULL.base`): a 0.62M-parameter Qwen2 pre-trained on a sloppy teacher's
  running sums (carries dropped half the time), so it solves about one 4-5-term chain in five.
  `base/SHA256SUMS` lists every file's sha256; `srft_trl.tasks.digit_chains.shipped_base` checks them
  before the model is used.
* `train.jsonl`: the first 2,400 problems of the testbed's seed-0 training stream (4-5-term and 6-term
  chains alternating), each with its correct running-sum demonstration, in the OpenR1 schema;
  `test.jsonl`: the testbed's 500 in-distribution (4-5-term) test problems; `test_long.jsonl`: its 500
  6-term test problems (one term beyond what the base was pre-trained on).

Re-running writes the same data; the base's bytes depend on the torch build, so its SHA256SUMS are
rewritten with it.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.testbed.settings import FULL, heldout_sets, train_problems  # noqa: E402
from srft_trl.tasks.digit_chains import SHIPPED_DIR, Problem, to_openr1_record  # noqa: E402

BASE_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
              "chat_template.jinja", "pretrain_info.json")
NUM_TRAIN = 3 * FULL.steps * FULL.prompts_per_step  # the quickstart: 300 steps x 8 problems, none repeated


def write_jsonl(path: Path, problems: list[Problem], split: str) -> None:
    rows = [json.dumps(to_openr1_record(p, i, split), ensure_ascii=False) for i, p in enumerate(problems)]
    path.write_text("\n".join(rows) + "\n")
    print(f"wrote {path.relative_to(ROOT)} ({len(rows)} rows)")


def build_data(out: Path) -> None:
    test = heldout_sets(FULL)["test"]
    write_jsonl(out / "train.jsonl", train_problems(FULL, 0, NUM_TRAIN), "train")
    write_jsonl(out / "test.jsonl", test["id"], "test")
    write_jsonl(out / "test_long.jsonl", test["zero"], "test_long")


def build_base(out: Path) -> None:
    from benchmarks.testbed.base import pretrain

    with tempfile.TemporaryDirectory() as tmp:
        built = Path(tmp) / "base"
        info = pretrain(FULL.base, built)
        print(f"pre-trained in {info['seconds']:.0f} s, final answer loss {info['final_loss']:.3f}")
        target = out / "base"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in BASE_FILES:
            if (built / name).is_file():
                shutil.copy2(built / name, target / name)
    sums = "".join(f"{hashlib.sha256((target / n).read_bytes()).hexdigest()}  {n}\n"
                   for n in sorted(p.name for p in target.iterdir()))
    (target / "SHA256SUMS").write_text(sums)
    print(f"wrote {target.relative_to(ROOT)}:\n{sums}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-only", action="store_true", help="write the data files only, keep the base")
    args = parser.parse_args(argv)
    out = Path(SHIPPED_DIR)
    out.mkdir(parents=True, exist_ok=True)
    build_data(out)
    if not args.data_only:
        build_base(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
