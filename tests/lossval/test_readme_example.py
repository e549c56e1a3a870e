"""The README's library example runs as written, on data shaped as it describes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd

README = Path(__file__).resolve().parents[2] / "README.md"


def _library_blocks() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Use it as a library"):]
    section = section[:section.index("\n## ", 1)]
    return re.findall(r"```python\n(.*?)```", section, re.S)


def _library_example() -> str:
    return next(block for block in _library_blocks() if "TabularEncoder(" in block)


def _frame(rng: np.random.Generator, n: int, start: int) -> pd.DataFrame:
    income = rng.normal(50, 10, n)
    city = rng.choice(["a", "b", "c"], n)
    label = np.where(income + rng.normal(0, 3, n) > 50, "yes", "no")
    return pd.DataFrame({"id": np.arange(start, start + n), "income": income, "city": city, "label": label})


def test_the_readme_library_example_runs_and_prunes_with_duplicates_kept_together() -> None:
    rng = np.random.default_rng(0)
    base = _frame(rng, 149, 0)
    flip = rng.choice(149, 29, replace=False)
    base.loc[flip, "label"] = np.where(base.loc[flip, "label"] == "yes", "no", "yes")
    # Every row twice (an export that appended itself): with this size and seed the cap falls between two copies.
    train_df = pd.concat([base, base.assign(id=base["id"] + 10000)], ignore_index=True)
    train_df.loc[[0, 149], "income"] = 1e6  # a typo (in both copies) the example's clipped_counts names
    valid_df = _frame(rng, 60, 1000)
    scope: dict = {"train_df": train_df, "valid_df": valid_df}
    exec(compile(_library_example(), str(README), "exec"), scope)  # noqa: S102 (our own README's code)
    lv, decision = scope["lv"], scope["decision"]
    assert lv.values_.shape == (298,) and decision.keep.shape == (298,)
    assert 0 < (~decision.keep).sum() <= 0.2 * 298
    assert lv.clipped_counts(scope["enc"].encoded_names_, "label")["income"] == 2
    assert (decision.keep[:149] == decision.keep[149:]).all()  # each copy shares its original's fate


def test_the_readme_library_example_runs_as_written_on_the_shipped_table(monkeypatch, capsys) -> None:
    # A newcomer's review: train_df and valid_df were never defined, so the example could not be run as given.
    monkeypatch.chdir(README.parent)
    scope: dict = {}
    for block in _library_blocks():
        exec(compile(block, str(README), "exec"), scope)  # noqa: S102 (our own README's code)
    decision, train_df = scope["decision"], scope["train_df"]
    assert len(train_df) == 647 and decision.keep.shape == (647,)
    assert 0 < (~decision.keep).sum() <= 0.2 * 647
    assert f"{int(decision.keep.sum())} kept" in capsys.readouterr().out


def _layout_rows() -> dict[str, str]:
    """The README's Layout table: its first column (the folders, as written) -> its second (what they hold)."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Layout"):]
    section = section[:section.index("\n## ", 1)]
    rows = [line.split("|")[1:3] for line in section.splitlines() if line.startswith("| `")]
    return {folders.strip(): what for folders, what in rows}


def test_the_readme_layout_names_every_test_folder_and_file_that_holds_tests() -> None:
    # A new user looks for the CLI tests there; tests/test_cli.py, the command line's own, was left out.
    root = README.parent
    what = _layout_rows()["`tests/`"]
    named = set(re.findall(r"`([^`]+)`", what))
    held = {p.name + "/" for p in (root / "tests").iterdir() if p.is_dir() and any(p.glob("test_*.py"))}
    held |= {p.name for p in (root / "tests").glob("test_*.py")}
    assert held <= named, f"README Layout, tests/: add {sorted(held - named)}"


def test_the_readme_layout_names_only_paths_that_exist() -> None:
    root = README.parent
    for folders, what in _layout_rows().items():
        for top in re.findall(r"`([^`]+/)`", folders):
            assert (root / top).is_dir(), f"README Layout names {top}, which is not there"
            for name in re.findall(r"`([\w./-]+\.(?:py|sh|md|yaml|json))`", what):
                assert (root / top / name).exists() or (root / name).exists(), \
                    f"README Layout, {top}: {name} is not there"
