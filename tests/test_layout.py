"""The test suite's own layout (issue 21): test modules share code only through helpers.py and
conftest.py, never by importing one another, and the folders (no ``__init__.py``) keep file names unique.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
MODULES = sorted(TESTS.rglob("*.py"))


def is_test_module(name: str) -> bool:
    """Whether a dotted import name refers to a test module (or conftest) rather than a helper."""
    last = name.rsplit(".", 1)[-1]
    return last.startswith("test_") or last == "conftest"


def imports_of_test_modules(source: str) -> list[tuple[int, str]]:
    """``(line, imported name)`` for every import of a test module in ``source``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if is_test_module(a.name)]
        elif isinstance(node, ast.ImportFrom):
            if node.module and is_test_module(node.module):
                found.append((node.lineno, node.module))
            elif not node.module or node.level:  # from . import test_x / from .pkg import test_x
                found += [(node.lineno, a.name) for a in node.names if is_test_module(a.name)]
    return found


def definitions(tree: ast.Module) -> dict[str, str]:
    """``{shape: name}`` of the top-level functions, classes and assignments of a module.

    A function's or class's shape is its AST without its name and docstring, so a renamed or
    re-documented copy has the same shape; an assignment's shape includes its name.
    """
    shapes = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            skip = 1 if ast.get_docstring(node) is not None else 0
            parts = [getattr(node, "args", None), getattr(node, "returns", None), *node.body[skip:]]
            shapes[" ".join(ast.dump(part) for part in parts if part is not None)] = node.name
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            shapes[ast.dump(node)] = ast.unparse(node).split("=")[0].strip()
    return shapes


@pytest.mark.parametrize(
    "source",
    [
        "import test_encode",
        "import tests.test_encode as e",
        "from test_colorize_cli import photo",
        "from .test_colorize_cli import photo",
        "from . import test_encode",
        "import conftest",
        "def f():\n    from test_encode import tiny_model_file\n",
    ],
)
def test_the_check_finds_every_form_of_import(source):
    assert imports_of_test_modules(source)


def test_the_check_allows_helpers_and_packages():
    assert not imports_of_test_modules("import helpers\nfrom helpers import photo\nfrom cinn_cli.cli.app import main\n")


def test_no_test_module_imports_another():
    bad = [
        f"{path.relative_to(TESTS)}:{line}: imports {name}"
        for path in MODULES
        for line, name in imports_of_test_modules(path.read_text(encoding="utf-8"))
    ]
    assert not bad, "import shared code from tests/helpers.py or use a conftest.py fixture:\n" + "\n".join(bad)


def test_test_file_names_are_unique():
    """The folders have no ``__init__.py``, so pytest imports each test file by its bare name."""
    counts = Counter(p.name for p in MODULES if p.name != "conftest.py")
    assert not [name for name, n in counts.items() if n > 1]
    assert not list(TESTS.rglob("__init__.py"))


def test_helpers_are_defined_once():
    """No test module or conftest carries its own copy of something helpers.py defines."""
    shared = definitions(ast.parse((TESTS / "helpers.py").read_text(encoding="utf-8")))
    copies = [
        f"{path.relative_to(TESTS)}: {name} copies helpers.{shared[shape]}"
        for path in MODULES
        if path.name != "helpers.py"
        for shape, name in definitions(ast.parse(path.read_text(encoding="utf-8"))).items()
        if shape in shared
    ]
    assert not copies, "import these from tests/helpers.py instead:\n" + "\n".join(copies)
