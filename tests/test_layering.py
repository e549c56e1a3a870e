"""The layering of ../shared/DESIGN.md, as README's Layout states it: the library knows nothing of the pipeline.

`lossval/cli.py`, `lossval/serving.py` and `lossval/_mlflow_model.py` are the pipeline's entry points that live in
the package (the console script, the registered MLflow model); they import the pipeline inside functions only.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINTS = {"cli.py", "serving.py", "_mlflow_model.py"}
PIPELINE = {"prefect", "mlflow", "great_expectations", "flows", "tasks", "deployments"}


def _imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_library_modules_import_no_pipeline_package() -> None:
    offenders = {p.name: sorted(_imports(p) & PIPELINE) for p in sorted((REPO / "lossval").glob("*.py"))
                 if p.name not in ENTRY_POINTS}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_the_entry_points_import_the_pipeline_only_inside_functions() -> None:
    at_top = {name: sorted(_imports(REPO / "lossval" / name, top_level_only=True) & (PIPELINE - {"mlflow"}))
              for name in sorted(ENTRY_POINTS)}
    assert {name: found for name, found in at_top.items() if found} == {}


def test_tasks_never_import_flows_or_deployments() -> None:
    offenders = {str(p.relative_to(REPO)): sorted(_imports(p) & {"flows", "deployments"})
                 for p in sorted((REPO / "tasks").rglob("*.py"))}
    assert {name: found for name, found in offenders.items() if found} == {}


def test_importing_the_library_loads_no_pipeline_package() -> None:
    modules = [p.stem for p in sorted((REPO / "lossval").glob("*.py")) if p.name not in ENTRY_POINTS | {"__init__.py"}]
    code = ("import importlib, sys\n"
            "from lossval import LossVal, prune, loss_noise_probability\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module('lossval.' + name)\n"
            f"print(sorted(m for m in {sorted(PIPELINE)!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
