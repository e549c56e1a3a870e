"""No pickle from user paths, servers on 127.0.0.1, and no password of a tracking URI in logs or params."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from lossval.config import config_from_dict, mask_secrets, mask_uri
from tests.reliability._helpers import write_pickle_record

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("lossval", "tasks", "flows", "deployments")
_PICKLE_MODULES = {"pickle", "cPickle", "cloudpickle", "dill", "joblib", "shelve"}


def _project_trees():  # noqa: ANN202
    for folder in PROJECT:
        for path in sorted((ROOT / folder).rglob("*.py")):
            yield str(path.relative_to(ROOT)), ast.parse(path.read_text())


def _call_name(node: ast.Call) -> str:
    f = node.func
    parts = []
    while isinstance(f, ast.Attribute):
        parts.append(f.attr)
        f = f.value
    if isinstance(f, ast.Name):
        parts.append(f.id)
    return ".".join(reversed(parts))


def _kw(node: ast.Call, name: str):  # noqa: ANN202
    for k in node.keywords:
        if k.arg == name:
            return k.value.value if isinstance(k.value, ast.Constant) else k.value
    return None


def test_no_pickle_is_ever_loaded() -> None:
    problems = []
    for rel, tree in _project_trees():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                problems += [f"{rel}:{node.lineno} imports {a.name}" for a in node.names if a.name.split(".")[0] in _PICKLE_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _PICKLE_MODULES:
                problems.append(f"{rel}:{node.lineno} imports from {node.module}")
            elif isinstance(node, ast.Call):
                name = _call_name(node)
                if name.endswith("torch.load") and _kw(node, "weights_only") is not True:
                    problems.append(f"{rel}:{node.lineno} torch.load without weights_only=True")
                if name.endswith(("np.load", "numpy.load")) and _kw(node, "allow_pickle") not in (None, False):
                    problems.append(f"{rel}:{node.lineno} np.load with allow_pickle")
                if name.endswith("read_pickle"):
                    problems.append(f"{rel}:{node.lineno} pandas.read_pickle")
    assert problems == []


_PERSISTS = {"cache_key_fn", "cache_policy", "result_storage", "result_storage_key", "result_serializer"}


def test_persisted_prefect_results_are_json() -> None:
    """A task whose result is persisted (and read back on a cache hit) must not use Prefect's cloudpickle default."""
    problems, persisted = [], []
    for rel, tree in _project_trees():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            kind, given = _call_name(node).split(".")[-1], {k.arg for k in node.keywords}
            if kind in ("task", "flow"):
                # Prefect persists a result when asked to, and also, unasked, whenever caching or result storage is set.
                if _kw(node, "persist_result") is True or ("persist_result" not in given and given & _PERSISTS):
                    persisted.append(f"{rel}:{node.lineno}")
                    if _kw(node, "result_serializer") != "json":
                        problems.append(f"{rel}:{node.lineno}")
            elif kind == "with_options" and "result_serializer" in given and _kw(node, "result_serializer") != "json":
                problems.append(f"{rel}:{node.lineno}")
    assert persisted, "the scan found no persisted task: the valuation cache's task is no longer recognised"
    assert problems == []


def test_servers_bind_to_localhost_by_default() -> None:
    from prefect.settings import get_current_settings

    assert get_current_settings().server.api.host == "127.0.0.1"  # Prefect's ephemeral/served API
    texts = [p for folder in (*PROJECT, "examples") for p in (ROOT / folder).rglob("*") if p.is_file()
             and p.suffix in (".py", ".yaml", ".yml", ".md", ".toml")] + [ROOT / "Makefile", ROOT / "README.md"]
    exposed = [str(p.relative_to(ROOT)) for p in texts if p.exists() and re.search(r"0\.0\.0\.0|--host[ =]+::", p.read_text())]
    assert exposed == []
    from flows import runner

    source = Path(runner.__file__).read_text()
    assert "PREFECT_SERVER_API_HOST" not in source  # the defaults above are not overridden
    assert "--host 127.0.0.1" in source  # the `mlflow ui` hint


@pytest.mark.parametrize("uri", ["http://alice:s3cret@10.0.0.5:5000", "postgresql://alice:s3cret@db/mlflow",
                                 "https://alice:s3cret@mlflow.example.com/"])
def test_tracking_passwords_are_masked_in_params_and_manifest(uri: str) -> None:
    config = config_from_dict({"data": "/data/x.csv", "target": "y", "tracking": {"uri": uri}})
    params = config.flat_params()
    assert params["tracking.uri"] == mask_uri(uri) and "alice:***@" in params["tracking.uri"]
    assert "s3cret" not in repr(params) and "s3cret" not in repr(config.public_dict())
    assert config.tracking.uri == uri  # the real value is still used to connect


def test_passwords_in_error_messages_are_masked() -> None:
    from tasks.track import _reason

    exc = RuntimeError("API request to http://alice:s3cret@127.0.0.1:9/api/2.0/mlflow/experiments/get-by-name failed\n"
                       "more lines")
    assert _reason(exc) == "RuntimeError: API request to http://alice:***@127.0.0.1:9/api/2.0/mlflow/experiments/get-by-name failed"
    # SQLAlchemy puts a remark of its own first; the line naming the database error is the reason.
    remark = ("(raised as a result of Query-invoked autoflush; consider using a session.no_autoflush block if this "
              "flush is occurring prematurely)\n(sqlite3.OperationalError) attempt to write a readonly database\n"
              "[SQL: INSERT INTO runs]")
    assert _reason(RuntimeError(remark)) == "RuntimeError: (sqlite3.OperationalError) attempt to write a readonly database"
    assert mask_secrets("no uri here") == "no uri here"
    assert mask_secrets("sqlite:////tmp/ws/mlflow.db") == "sqlite:////tmp/ws/mlflow.db"


def test_prefect_would_unpickle_a_record_that_names_pickle(tmp_path: Path) -> None:
    """The risk screen_cache_record guards against: Prefect decodes with the record's own serializer."""
    from prefect._internal.result_records import ResultRecord

    record, marker = tmp_path / "record", tmp_path / "marker"
    write_pickle_record(record, marker)
    ResultRecord.deserialize(record.read_bytes())
    assert marker.exists()


@pytest.mark.parametrize("content", ["pickle", "not json at all", '{"metadata": {}}'])
def test_screen_cache_record_moves_a_non_json_record_aside_unread(tmp_path: Path, content: str,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    from tasks.value import CACHE_KEY_PREFIX, RESULTS_DIR_NAME, screen_cache_record

    record = tmp_path / RESULTS_DIR_NAME / f"{CACHE_KEY_PREFIX}abc"
    marker = tmp_path / "marker"
    if content == "pickle":
        write_pickle_record(record, marker)
    else:
        record.parent.mkdir(parents=True)
        record.write_text(content)
    original = record.read_bytes()
    with caplog.at_level("WARNING", logger="lossval"):
        moved = screen_cache_record(tmp_path, "abc")
    assert moved is not None and moved.parent == record.parent / "rejected"
    assert not record.exists() and moved.read_bytes() == original  # kept for inspection, byte for byte
    assert not marker.exists()
    assert "not 'json'" in caplog.text and str(moved) in caplog.text


def test_screen_cache_record_leaves_json_records_and_missing_ones_alone(tmp_path: Path) -> None:
    from prefect.serializers import JSONSerializer

    from tasks.value import CACHE_KEY_PREFIX, RESULTS_DIR_NAME, screen_cache_record

    assert screen_cache_record(tmp_path, "none") is None
    record = tmp_path / RESULTS_DIR_NAME / f"{CACHE_KEY_PREFIX}abc"
    record.parent.mkdir(parents=True)
    record.write_text(json.dumps({"metadata": {"serializer": json.loads(JSONSerializer().model_dump_json())},
                                  "result": "{}"}))
    assert screen_cache_record(tmp_path, "abc") is None
    assert record.exists()
