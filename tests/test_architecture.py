"""The pipeline's layers hold: nothing imports a layer above it (the import-linter contract in
pyproject.toml, also run by ``make lint``), and the library never prints."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PKG = ROOT / "obscale_bayes"


def test_layers_contract_is_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.fail("lint-imports (import-linter) is not installed: pip install -e '.[dev]'")
    r = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert "0 broken" in r.stdout


def _prints(path: Path) -> list[int]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return [
        n.lineno
        for n in ast.walk(tree)
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
    ]


def test_the_library_never_prints():
    """Only the command line prints; everything else reports through the package logger."""
    offenders = {
        str(p.relative_to(ROOT)): lines
        for p in PKG.rglob("*.py")
        if "cli" not in p.relative_to(PKG).parts and (lines := _prints(p))
    }
    assert not offenders, f"print() outside obscale_bayes/cli: {offenders}"


MAX_LINES = 400
REASON = "Over 400 lines because"


def test_modules_are_small_or_say_why():
    """Small single-purpose modules; a longer one states its reason in its first 40 lines."""
    long = []
    for p in PKG.rglob("*.py"):
        lines = p.read_text().splitlines()
        if len(lines) > MAX_LINES and not any(REASON in ln for ln in lines[:40]):
            long.append(f"{p.relative_to(ROOT)} ({len(lines)})")
    assert not long, f"modules over {MAX_LINES} lines without '{REASON} ...' at the top: {long}"
