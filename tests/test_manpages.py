"""The man pages in man/ are generated from the Click definitions and must not be stale."""

from __future__ import annotations

import runpy
from pathlib import Path

MAN = Path(__file__).resolve().parents[1] / "man"


def test_man_pages_match_the_click_definitions():
    generator = runpy.run_path(str(MAN / "generate.py"))
    stale = generator["stale_pages"]()
    assert not stale, f"stale man pages {stale}: run python man/generate.py"


def test_every_command_has_a_page():
    names = {p.name for p in MAN.glob("*.1")}
    for page in ("cinn.1", "cinn-sample.1", "cinn-info.1", "cinn-train-mnist.1", "cinn-eval-mnist.1"):
        assert page in names
