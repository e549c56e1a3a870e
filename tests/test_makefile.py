"""The Makefile's housekeeping target removes build leftovers, never a workspace."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make (the README's two commands do too)")
def test_make_clean_keeps_the_workspace_and_its_quarantine(tmp_path: Path) -> None:
    shutil.copy(REPO / "Makefile", tmp_path / "Makefile")
    quarantine = tmp_path / "lossval-workspace" / "runs" / "r1" / "quarantine.parquet"
    quarantine.parent.mkdir(parents=True)
    quarantine.write_bytes(b"rows pruning removed")
    (tmp_path / ".pytest_cache").mkdir()
    (tmp_path / ".venv" / "bin").mkdir(parents=True)

    done = subprocess.run(["make", "clean"], cwd=tmp_path, capture_output=True, text=True, timeout=60)

    assert done.returncode == 0, done.stderr
    assert quarantine.read_bytes() == b"rows pruning removed"
    assert not (tmp_path / ".pytest_cache").exists() and not (tmp_path / ".venv").exists()
    assert "kept lossval-workspace/" in done.stdout
