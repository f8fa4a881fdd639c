"""The install lines and commands the docs give are ones that exist: srft-trl is not on PyPI, the Hub CLI
is `hf`, and the README's offline smoke commands name shipped things."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *(ROOT / "docs").glob("*.md"), ROOT / "notebooks" / "README.md",
        *(ROOT / "notebooks").glob("*.py"), *(ROOT / "notebooks").glob("*.ipynb")]


def test_no_install_line_names_a_package_or_url_that_does_not_exist():
    for path in DOCS:
        text = path.read_text()
        assert not re.search(r"pip install (-q )?[\"']?srft-trl", text), path  # not on PyPI
        assert "git+https://github.com/srft-trl" not in text, path  # no repository URL is known to hold it
        assert "huggingface-cli" not in text, path  # the current Hub CLI is `hf` (`hf auth login`)


def test_readme_commands_name_shipped_things():
    from srft_trl.shipped import shipped_recipes

    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/quickstart.sh" in readme and "srft_quickstart" in shipped_recipes()
    assert "srft-trl train --config srft_quickstart" in (ROOT / "scripts" / "quickstart.sh").read_text()
    assert "--data-dir samples" in readme  # the CPU smoke eval works offline
    assert "docs/images/quickstart_training.png" in readme and (ROOT / "docs/images/quickstart_training.png").is_file()
    assert "measured 0.04" not in readme and "0.00 -> 0.04" not in readme
    assert "/eval_results/" in (ROOT / ".gitignore").read_text().splitlines()
