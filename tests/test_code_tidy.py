"""No dead private code: a module-level ``_name`` that nothing uses only misleads the next reader."""

from __future__ import annotations

import ast
import re
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKED = ("lossval", "tasks", "flows", "deployments")


def _module_level_names(tree: ast.Module) -> list[tuple[str, int]]:
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.append((node.name, node.lineno))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names += [(t.id, node.lineno) for t in targets if isinstance(t, ast.Name)]
    return names


def test_every_private_module_level_name_is_used() -> None:
    sources = {p: p.read_text() for d in (*CHECKED, "tests", "benchmarks") for p in (REPO / d).rglob("*.py")}
    uses = Counter(re.findall(r"\b[A-Za-z_]\w*\b", "\n".join(sources.values())))
    unused = []
    for path, source in sources.items():
        if path.relative_to(REPO).parts[0] not in CHECKED:
            continue
        for name, line in _module_level_names(ast.parse(source)):
            if name.startswith("_") and not name.startswith("__") and uses[name] == 1:
                unused.append(f"{path.relative_to(REPO)}:{line}: {name}")
    assert unused == []
