"""A non-editable install carries the shipped weights and finds them through importlib.resources."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from helpers import ROOT

SHIPPED = sorted(p.name for p in (ROOT / "weights").glob("*.safetensors"))


@pytest.mark.slow
def test_wheel_ships_weights_and_installed_package_finds_them(tmp_path):
    assert "mnist-classifier.safetensors" in SHIPPED
    wheels = tmp_path / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", wheels, ROOT], check=True, timeout=300)
    wheel = next(wheels.glob("cinn-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for name in SHIPPED:
        assert f"cinn_cli/weights/{name}" in names
    modules = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "cinn_cli").rglob("*.py"))
    assert [m for m in modules if m not in names] == []  # every package of the tree is shipped
    pages = sorted(p.name for p in (ROOT / "man").glob("*.1"))
    data = f"cinn-{wheel.name.split('-')[1]}.data/data/share/man/man1"  # installed as <prefix>/share/man/man1
    assert pages and all(f"{data}/{page}" in names for page in pages)
    entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "cinn = cinn_cli.cli.app:entry" in zipfile.ZipFile(wheel).read(entry_points).decode()
    site = tmp_path / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", site, wheel], check=True, timeout=300)
    code = (
        "import cinn_cli.files.model_file as s, sys\n"
        "for name in sys.argv[1:]:\n"
        "    p = s.shipped_weights(name[: -len('.safetensors')])\n"
        "    print(p, p.is_file())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    cmd = [sys.executable, "-c", code, *SHIPPED]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, check=True, timeout=300)
    out = done.stdout.splitlines()
    assert len(out) == len(SHIPPED)
    for line in out:
        path, found = line.rsplit(" ", 1)
        assert found == "True" and Path(path).is_relative_to(site), line
