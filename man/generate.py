"""Regenerate the man pages in this folder from the Click definitions.

    python man/generate.py            # rewrite man/*.1
    python man/generate.py --check    # exit 1 if the committed pages are stale (used by the tests)

Needs click-man (in the ``test`` extra). The date field is fixed so that regenerating unchanged
commands gives identical files.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from click_man.core import write_man_pages

from cinn_cli.cli.app import main
from cinn_cli.files.model_file import package_version

MAN_DIR = Path(__file__).resolve().parent
DATE = "2026-11"


def generate(target: Path) -> None:
    write_man_pages("cinn", main, version=package_version(), target_dir=str(target), date=DATE)


def stale_pages() -> list[str]:
    """Names of the pages that differ from a fresh generation (missing or extra count too)."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = {p.name: p.read_text() for p in Path(tmp).glob("*.1")}
    committed = {p.name: p.read_text() for p in MAN_DIR.glob("*.1")}
    return sorted(n for n in fresh.keys() | committed.keys() if fresh.get(n) != committed.get(n))


if __name__ == "__main__":
    if "--check" in sys.argv:
        stale = stale_pages()
        if stale:
            print("stale man pages (run python man/generate.py):", ", ".join(stale))
            sys.exit(1)
        print("man pages up to date")
    else:
        generate(MAN_DIR)
        print(f"wrote {len(list(MAN_DIR.glob('*.1')))} man pages to {MAN_DIR}")
