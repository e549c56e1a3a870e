"""pyproject.toml declares what the code imports: a fresh install of each extra can run the code it is for."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OWN = {"lossval", "tasks", "flows", "deployments", "benchmarks", "tests", "expectations"}
# import name -> distribution name, where they differ
DISTRIBUTION = {"sklearn": "scikit-learn", "yaml": "pyyaml", "great_expectations": "great-expectations"}
# lossval/ modules that only the pipeline reaches (the registered model, the CLI's run/serve/watch commands)
PIPELINE_ONLY = {"serving.py", "_mlflow_model.py", "cli.py"}


def _requirements(extra: str | None) -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    specs = project["dependencies"] if extra is None else project["optional-dependencies"][extra]
    names = set()
    for spec in specs:
        name = re.match(r"[A-Za-z0-9_.\-]+", spec).group(0).lower().replace("_", "-")
        names |= _requirements(spec[spec.index("[") + 1:spec.index("]")]) if name == "lossval" else {name}
    return names


def _imported(files: list[Path]) -> dict[str, str]:
    """Third-party distribution -> the first file importing it, counting imports inside functions too."""
    found: dict[str, str] = {}
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                tops = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = [node.module.split(".")[0]]
            else:
                continue
            for top in tops:
                if top not in OWN and top not in sys.stdlib_module_names:
                    found.setdefault(DISTRIBUTION.get(top, top).lower(), str(path.relative_to(REPO)))
    return found


def _undeclared(files: list[Path], declared: set[str]) -> dict[str, str]:
    return {name: where for name, where in _imported(files).items() if name not in declared}


def test_library_imports_only_core_dependencies() -> None:
    # `pip install lossval` (no extras) must run the library: TabularEncoder's warnings quote column names as YAML.
    files = [p for p in (REPO / "lossval").glob("*.py") if p.name not in PIPELINE_ONLY]
    assert _undeclared(files, _requirements(None)) == {}


def test_pipeline_benchmark_and_test_imports_are_declared() -> None:
    core, pipeline = _requirements(None), _requirements("pipeline")
    pipeline_files = [p for d in ("tasks", "flows", "deployments") for p in (REPO / d).rglob("*.py")]
    pipeline_files += [REPO / "lossval" / name for name in sorted(PIPELINE_ONLY)]
    assert _undeclared(pipeline_files, core | pipeline) == {}
    # `make bench` installs the dev and bench extras
    bench = core | _requirements("dev") | _requirements("bench")
    assert _undeclared(list((REPO / "benchmarks").rglob("*.py")), bench) == {}
    assert _undeclared(list((REPO / "tests").rglob("*.py")), core | _requirements("dev")) == {}
