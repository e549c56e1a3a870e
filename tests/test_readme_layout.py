"""README's Layout section names what a new maintainer finds in the tree."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _layout_section() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("\n## Layout\n")
    return text[start:text.index("\n## ", start + 1)]


def test_layout_names_every_public_module_and_deployment_file() -> None:
    layout = _layout_section()
    modules = [(d, p.stem) for d in ("lossval", "flows") for p in sorted((REPO / d).glob("*.py"))
               if not p.stem.startswith("_")]
    missing = [f"{d}/{stem}.py" for d, stem in modules if f"`{stem}`" not in layout]
    files = [p.name for p in sorted((REPO / "deployments").iterdir()) if p.is_file() and p.suffix != ".py"]
    row = next(line for line in layout.splitlines() if line.startswith("| `deployments/`"))
    missing += [f"deployments/{name}" for name in files if f"`{name}`" not in row]
    assert missing == []
