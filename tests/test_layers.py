"""The package's layers import in one direction only (issue 21):

    cli -> api -> tasks -> clikit -> training -> batch -> files -> flows, errors

A module may import its own layer or any layer to its right, never one to its left; a task's
folder never imports another task's (they meet only in the registry, ``cinn_cli.tasks``, which
imports task folders by name, lazily). Checked on every import statement, including the ones
inside functions (those are how heavy modules stay out of ``cinn --help``).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cinn_cli"
LAYERS = ["cli", "api", "tasks", "clikit", "training", "batch", "files", "flows|errors"]


def rank(module: str) -> int | None:
    """The layer of ``cinn_cli.<part>...`` (0 = top); ``None`` for the package root and ``__main__``."""
    parts = module.split(".")
    if len(parts) < 2 or parts[1] in ("__main__",):
        return None
    for i, layer in enumerate(LAYERS):
        if parts[1] in layer.split("|"):
            return i
    raise AssertionError(f"{module}: not in any layer; add its package to LAYERS")


def task_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 3 and parts[1] == "tasks" else None


def imports(path: Path, package: Path = PACKAGE) -> list[tuple[int, str]]:
    """``(line, module)`` for every ``cinn_cli`` module ``path`` imports (``from X import y`` as X.y
    when X.y is a module, so ``from cinn_cli import tasks`` counts as the registry)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("cinn_cli")]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("cinn_cli"):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                where = package.parent / sub.replace(".", "/")
                is_module = where.with_suffix(".py").exists() or where.is_dir()
                found.append((node.lineno, sub if is_module else node.module))
    return found


def module_name(path: Path, package: Path = PACKAGE) -> str:
    rel = path.relative_to(package.parent).with_suffix("")
    return ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)


def violations(paths, package: Path = PACKAGE) -> list[str]:
    bad = []
    for path in paths:
        me = module_name(path, package)
        for line, other in imports(path, package):
            mine, theirs = rank(me), rank(other)
            if mine is not None and theirs is not None and theirs < mine:
                bad.append(f"{me}:{line} imports {other} ({LAYERS[theirs]} is above {LAYERS[mine]})")
            if task_of(me) and task_of(other) and task_of(me) != task_of(other):
                bad.append(f"{me}:{line} imports {other} (one task imports another)")
    return bad


def test_imports_go_one_way_only():
    assert violations(sorted(PACKAGE.rglob("*.py"))) == []


@pytest.mark.parametrize(
    ("where", "code", "why"),
    [
        ("files/x.py", "from cinn_cli.batch.report import RunReport", "batch is above files"),
        ("tasks/mnist/x.py", "from cinn_cli.tasks.colorize.color import resize", "one task imports another"),
        ("flows/x.py", "def f():\n    from cinn_cli.tasks import get", "tasks is above flows"),
    ],
)
def test_the_check_catches_a_wrong_import(tmp_path, where, code, why):
    fake = tmp_path / "cinn_cli" / where
    fake.parent.mkdir(parents=True)
    fake.write_text(code + "\n")
    found = violations([fake], tmp_path / "cinn_cli")
    assert len(found) == 1 and why in found[0], found
