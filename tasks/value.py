"""Stage 3: LossVal values of the train rows against the validation rows (GPU when present)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import pandas as pd
from prefect import task

from lossval.config import PipelineConfig, torch_seed
from lossval.encoding import ENCODER_VERSION, TabularEncoder
from lossval.errors import InputError, UnseenLevelsWarning
from lossval.io import file_sha256, list_data_files, pause_point, read_json, write_json, write_parquet
from lossval.splitting import SPLIT_VERSION
from lossval.valuation import VALUES_VERSION, LossVal
from tasks._log import run_logger
from tasks._paths import Workspace

__all__ = ["value", "value_in", "value_cached", "screen_cache_record", "valuation_key", "effective_lossval_options",
           "feature_exclusions", "config_encoder", "check_feature_columns",
           "RESULTS_DIR_NAME", "CACHE_KEY_PREFIX"]

RESULTS_DIR_NAME = "prefect-results"  # under the workspace: the valuation cache records
CACHE_KEY_PREFIX = "lossval-value-"
# In the valuation key of a config with a curated validation or test file: since 2026-12-07 such a CSV file reads NA
# words ('NA' for North America, 'null') in the data's text columns as text, not as missing values. Its bytes, and so
# its content hash, are unchanged: without this, values (and a champion's run key) from the old reading were reused.
CURATED_READ_TAG = ":curated-na-words-text"


def feature_exclusions(config: PipelineConfig) -> list[str]:
    """Columns that are never features: ids, the split's marker or timestamp column, and the user's excludes.

    The marker and timestamp columns only where the validation strategy reads them (``column``,
    ``latest``): a leftover ``validation.column`` under another strategy is a key the config warns
    has no effect, and the valuation key (:func:`valuation_key`) leaves it out, so it must not
    remove a feature either.
    """
    cols = ["row_id", *config.exclude]
    v = config.used_only().validation
    for c in (config.id_column, v.column, v.timestamp_column):
        if c:
            cols.append(c)
    return list(dict.fromkeys(cols))


def check_feature_columns(config: PipelineConfig, columns: Sequence[str]) -> None:
    """Refuse a column named under ``features`` that the data lacks, naming the config key and the data's columns.

    ``features.exclude`` counts only without ``features.include`` (with it, excluding a column the
    data lacks changes nothing). ``row_id``, which the snapshot adds, is not one of the data's columns.

    Raises:
        InputError: the first such column, its key (``features.include`` ...), and the nearest name.
    """
    from lossval.io import require_column

    data = [c for c in columns if c != "row_id" or config.id_column == "row_id"]
    named = {"features.include": config.include or [], "features.exclude": [] if config.include else config.exclude,
             "features.categorical": config.categorical, "features.numeric": config.numeric}
    for key, names in named.items():
        for name in names:
            require_column(data, name, key=key, source=config.data)


def config_encoder(config: PipelineConfig, task: str, columns: Sequence[str]) -> TabularEncoder:
    """The (unfitted) encoder the config's feature options describe, for ``task`` on a frame with ``columns``.

    The user's ``exclude`` goes in whole (a name the data lacks is refused: a typo would keep that
    column as a feature); the pipeline's own columns only where the frame has them.

    Raises:
        InputError: a column named under ``features`` that ``columns`` lack (:func:`check_feature_columns`).
    """
    check_feature_columns(config, columns)
    user = set(config.exclude)
    exclude = [c for c in feature_exclusions(config) if c in user or c in columns]
    return TabularEncoder(target=config.target, task=task, features=list(config.include) if config.include else None,
                          exclude=exclude, categorical=list(config.categorical) or None,
                          numeric=list(config.numeric) or None, source=config.data)


def _content_hash(path: str | None) -> str | None:
    """sha256 of a curated file, or of each data file of a curated folder; the path itself when it is missing or
    cannot be listed (the split reports that). A file gone or refused while hashed: :func:`file_sha256`'s InputError."""
    if not path or "://" in path or not Path(path).exists():
        return path
    try:
        files = list_data_files(path)
    except InputError:
        return path
    return hashlib.sha256("".join(f"{f.name}:{file_sha256(f)};" for f in files).encode()).hexdigest()


def valuation_key(snapshot_hash: str, config: PipelineConfig) -> str:
    """Cache key of a valuation: same snapshot + same split/encoding/LossVal settings + same
    :data:`lossval.valuation.VALUES_VERSION` -> same values.

    Only what changes the computed values is in it. LossVal options are taken as in effect: one
    written out at its default (``epochs: 30``) is the default, and the device is the kind
    that values on this machine (``auto`` on a CPU machine is ``cpu``; on a GPU machine it is
    ``cuda``, whose values differ in the last digits). A valuation deployment's device is
    decided on its worker, so there the configured spelling goes in. Of the pruning section
    only whether the ``mixture`` policy needs ``noise_prob`` counts: a new threshold, cap or
    class protection prunes the same values again without valuing again (the run key, which
    names the registered model version, still covers the whole pruning section).

    The version makes an upgrade that changes LossVal's defaults value again instead of
    reusing values computed under the old ones.
    """
    config = config.used_only()  # a key the config's choices leave unread does not value again
    settings = {k: v for k, v in config.to_dict().items()
                if k in ('target', 'task', 'id_column', 'include', 'exclude', 'categorical', 'test_fraction',
                         'test_path', 'seed', 'validation')}
    if config.numeric:  # only when set: a config without it is keyed as if the option did not exist
        settings["numeric"] = config.numeric
    settings["lossval"] = effective_lossval_options(config)
    settings["noise_prob"] = config.pruning.policy == "mixture"
    sections = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    # Curated files decide the training and validation rows too: their content, not only their path.
    curated = [config.test_path, config.validation.path if config.validation.strategy == "file" else None]
    contents = [_content_hash(p) for p in curated]
    # one-hot: levels left unstandardised (fit's one_hot_columns); before, values of data with categoricals differed.
    # strategy-exclusions: before, a leftover validation.column dropped that feature under the same key.
    # blank-missing: blank text in a categorical column is the missing level, no longer a level of its own.
    # mixture-range: noise_prob no longer splits float rounding when a few rows carry a real loss (only the mixture
    # policy's values hold noise_prob, so only its values are computed again). all-fit: nor splits two classes that
    # are both fit to different depths (ALL_FIT_LOSS).
    key = (f"{sections}:{contents}:values-v{VALUES_VERSION}:split-v{SPLIT_VERSION}:encoder-v{ENCODER_VERSION}:one-hot-raw"
           ":strategy-exclusions:blank-missing" + (":mixture-range:all-fit" if settings["noise_prob"] else "")
           + (CURATED_READ_TAG if any(curated) else ""))
    return f"{snapshot_hash}-{hashlib.sha256(key.encode()).hexdigest()[:16]}"


def effective_lossval_options(config: PipelineConfig) -> dict:
    """The config's ``lossval`` options that differ from LossVal's defaults, with the device resolved.

    The device is resolved here (``auto`` -> ``cpu`` or ``cuda``) unless a valuation deployment
    values the rows on another machine.
    """
    from lossval._torchutil import resolve_device

    defaults = LossVal().get_params()
    opts = {k: v for k, v in config.lossval.items() if k not in defaults or v != defaults[k]}
    if not config.valuation_deployment:
        opts["device"] = resolve_device(config.lossval.get("device", "auto")).type
    return opts


def _cache_key(context, parameters) -> str:  # noqa: ANN001 (Prefect's signature)
    return CACHE_KEY_PREFIX + parameters["key"]


# JSON, not Prefect's default cloudpickle: a cache hit then never unpickles a file from the workspace.
@task(name="value", cache_key_fn=_cache_key, persist_result=True, result_serializer="json")
def value(train: str, validation: str, *, key: str, config: PipelineConfig, workspace: str) -> dict:
    """Fit the encoder and LossVal; write ``values.parquet`` (row_id, value, rank[, noise_prob]).

    Cached by ``key`` (see :func:`valuation_key`): a rerun with the same snapshot and config
    reuses the files under ``values/<key>/`` instead of valuing again.
    """
    out_dir = Workspace.at(workspace).values_dir(key)
    tr = pd.read_parquet(train)
    va = pd.read_parquet(validation)
    tr.index, va.index = tr["row_id"].to_numpy(), va["row_id"].to_numpy()  # errors name the row by its row_id
    enc = config_encoder(config, config.task, tr.columns).fit(tr)
    with warnings.catch_warnings():
        if config.validation.strategy == "file":  # the split stage warned about that file already, by its name
            warnings.simplefilter("ignore", UnseenLevelsWarning)
        X, X_val = enc.transform(tr), enc.transform(va, source="validation split")
    # Unknown labels: a clear error; a regression target of numbers stored as text as numbers, which LossVal.fit takes.
    y = enc.valuation_target(tr[config.target])
    y_val = enc.valuation_target(va[config.target], source="validation split")
    pause_point("value")  # test-only hook: fault tests kill the run here
    t0 = time.perf_counter()
    lv = LossVal(**{**config.lossval, "task": enc.task_, "seed": torch_seed(config.seed)}).fit(
        X, y, X_val, y_val, one_hot_columns=enc.one_hot_positions(),
        feature_names=enc.encoded_names_)
    seconds = time.perf_counter() - t0
    table = pd.DataFrame({"row_id": tr["row_id"].to_numpy(), "value": lv.values_})
    table["rank"] = table["value"].rank(method="first").astype("int64")
    if config.pruning.policy == "mixture":
        table["noise_prob"] = lv.noise_probability()
    # The values first and the report last, with the values' sha256: a valuation stopped while it rewrote a folder
    # (an older release's values, an unreadable encoder) left the old values.parquet beside a current report, and the
    # next run reused them; now a report names the values it belongs to (_usable_report).
    path = write_parquet(table, out_dir / "values.parquet")
    enc.save(out_dir / "encoder.json")
    valued_at = time.time()
    write_json({"seconds": seconds, "valued_at": dt.datetime.fromtimestamp(valued_at, dt.timezone.utc).isoformat(
                    timespec="seconds"), "device": str(lv.device_), "cuda_graphs": lv.cuda_graphs_, "task": enc.task_,
                "history": lv.history_,
                "params": json.loads(json.dumps(lv.get_params(), default=str)), "settings": lv.settings_,
                "network": lv.network_, "blur": lv.blur_,
                # what the fit used where LossVal changed the option (a one-row last batch, fewer validation rows)
                "resolved": {"batch_size": lv.batch_size_, "val_subsample": lv.val_subsample_,
                             "average_last": lv.average_last_},
                "values_version": VALUES_VERSION, "rows": len(tr),
                "features": len(enc.encoded_names_), "clipped": lv.clipped_counts(enc.encoded_names_, config.target),
                "clipped_validation": lv.clipped_counts(enc.encoded_names_, config.target, validation=True),
                "duplicate_rows": lv.n_duplicate_rows_, "values_sha256": file_sha256(path, own_output=True)},
               out_dir / "valuation.json")  # last: a report whose values_sha256 matches marks a complete valuation
    return {"values": str(path), "encoder": str(out_dir / "encoder.json"), "report": str(out_dir / "valuation.json"),
            "task": enc.task_, "seconds": seconds, "device": str(lv.device_), "valued_at": valued_at}


def value_in(workspace: str, *, refresh: bool = False):  # noqa: ANN201 (a Prefect task)
    """The ``value`` task with its cache records in ``<workspace>/prefect-results`` (JSON, nothing else persisted).

    Only this task's result is persisted, so a run leaves no Prefect result files but the
    valuation cache; ``refresh=True`` values again whatever the cache holds.
    """
    return value.with_options(result_storage=Path(workspace).resolve() / RESULTS_DIR_NAME, refresh_cache=refresh)


def screen_cache_record(workspace: str | os.PathLike[str], key: str) -> Path | None:
    """Move aside a valuation cache record that is not a JSON record, before Prefect reads it.

    On a cache hit Prefect decodes the stored result with the serializer the record itself
    names, so a record in the workspace that claims ``pickle`` (this task only writes
    ``json``) would be unpickled. Such a record, or one that is not readable JSON, is
    renamed to ``prefect-results/rejected/<name>-<time>`` (kept for inspection, never read
    again) and the run values afresh.

    Returns:
        Where the record was moved, or ``None`` when there was none or it was sound.
    """
    record = Path(workspace).resolve() / RESULTS_DIR_NAME / f"{CACHE_KEY_PREFIX}{key}"
    if not record.is_file():
        return None
    try:
        serializer = json.loads(record.read_text(encoding="utf-8"))["metadata"]["serializer"]["type"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        serializer = None
    if serializer == "json":
        return None
    rejected = record.parent / "rejected" / f"{record.name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
    rejected.parent.mkdir(parents=True, exist_ok=True)
    os.replace(record, rejected)
    run_logger().warning(
        "valuation cache record %s declares serializer %r, not 'json'; moved it to %s and valuing again",
        record, serializer if serializer is not None else "(unreadable)", rejected)
    return rejected


def value_cached(train: str, validation: str, *, key: str, config: PipelineConfig, workspace: str) -> dict:
    """Run the ``value`` task through its cache: screen the record, reuse it, value again if its files are gone.

    The one entry point of both flows (in-process, and the valuation deployment). The record
    returned has ``cached``: whether the values came from an earlier run (its ``seconds`` are
    then that run's fit time).
    """
    started = time.time()
    screen_cache_record(workspace, key)
    vals = value_in(workspace)(train, validation, key=key, config=config, workspace=workspace)
    here = Workspace.at(workspace).values_dir(key)
    if Path(vals["values"]).parent != here:
        # A record copied with its workspace (cp -a) names the original's files: use this copy's own
        # files when they are all there, so a run never depends on (or records) another workspace.
        names = {"values": "values.parquet", "encoder": "encoder.json", "report": "valuation.json"}
        if all((here / name).is_file() for name in names.values()):
            vals = {**vals, **{field: str(here / name) for field, name in names.items()}}
        else:
            vals = {**vals, "values": str(here / "values.parquet")}  # missing here: value again below
    if not Path(vals["values"]).exists():  # cached record whose files were removed: value again
        vals = value_in(workspace, refresh=True)(train, validation, key=key, config=config, workspace=workspace)
    elif not _loadable_encoder(vals["encoder"]) or not _usable_report(vals["report"], vals["values"]):
        vals = value_in(workspace, refresh=True)(train, validation, key=key, config=config, workspace=workspace)
    return {**vals, "cached": vals.get("valued_at", 0.0) < started}


def _usable_report(report: str, values: str) -> bool:
    """Whether a cached valuation was computed under this lossval's VALUES_VERSION, and its report belongs to the
    values beside it; warns when not.

    The key holds the version, so only a record written under this key by another release (a
    valuation worker not yet upgraded) can differ: its values are not the ones the key names.
    A report's ``values_sha256`` (reports since 2026-12-07) must match ``values.parquet``: a
    valuation stopped while it rewrote the folder leaves other values beside it.
    """
    try:
        recorded = read_json(report)
        theirs = recorded.get("values_version")
    except (OSError, ValueError, AttributeError, InputError) as exc:
        run_logger().warning("the cached valuation report %s cannot be read (%s); valuing again", report, exc)
        return False
    digest = recorded.get("values_sha256")
    if digest is not None and theirs == VALUES_VERSION:
        try:
            matches = file_sha256(values) == digest
        except InputError:  # unreadable: valued again
            matches = False
        if not matches:
            run_logger().warning("the cached values %s are not the ones their report %s was written with (a valuation "
                                 "stopped while it rewrote them?); valuing again", values, report)
            return False
    if theirs != VALUES_VERSION:
        run_logger().warning("the cached values in %s were computed under VALUES_VERSION %s, this lossval's is %s "
                          "(another lossval release wrote them); valuing again", Path(report).parent, theirs,
                          VALUES_VERSION)
        return False
    return True


def _loadable_encoder(path: str) -> bool:
    """Whether a cached valuation's encoder can be read; warns (and the caller values again) when not."""
    try:
        TabularEncoder.load(path)
    except (OSError, ValueError, KeyError, TypeError, InputError) as exc:
        run_logger().warning("the cached encoder %s cannot be read (%s); valuing again", path, exc)
        return False
    return True
