"""The datasets file: which datasets the nightly run cleans and where their new data lands.

```yaml
# datasets.yaml (relative paths are relative to this file; ~ is the home folder)
datasets:
  - name: loans                 # required: dataset name for runs, locks, MLflow (overrides the config's `dataset`)
    config: configs/loans.yaml  # a lossval pipeline config (see examples/config.yaml)
    landing: loans              # subfolder of the landing folder for new files (default: name)
```

See ``deployments/datasets.example.yaml``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from lossval.config import DATASET_NAME_RE, PipelineConfig, load_config, read_yaml, resolve_config_path
from lossval.errors import ConfigError, InputError

__all__ = ["DatasetEntry", "CatalogProblem", "load_catalog", "load_catalog_configs", "read_catalog",
           "read_catalog_entries", "unusable_entries_error", "entry_for_landing", "require_flow_parameters"]

@dataclass(frozen=True)
class DatasetEntry:
    """One dataset of the datasets file.

    Attributes:
        name: Dataset name (runs, locks, registered model ``lossval-<name>``).
        config_path: Absolute path of its pipeline config.
        landing: Subfolder of the landing folder its new files arrive in.
    """

    name: str
    config_path: str
    landing: str

    def load(self, *, data: str | None = None) -> PipelineConfig:
        """The validated pipeline config, with ``dataset`` set to :attr:`name` and ``data`` optionally replaced.

        Raises:
            ConfigError: the config file is missing or invalid.
        """
        config = load_config(self.config_path)
        changes: dict[str, str] = {"dataset": self.name}
        if data is not None:
            changes["data"] = data
        return dataclasses.replace(config, **changes)


def require_flow_parameters(**values: str | None) -> None:
    """Refuse empty path parameters of the nightly and new-data flows, naming them and their source.

    ``deployments/prefect.yaml`` fills them from environment variables when it is deployed;
    Prefect only warns when one is unset and deploys an empty string, which would otherwise
    surface at 02:00 as a missing file called ``.``.

    Raises:
        ConfigError: names the empty parameters and how to set them.
    """
    empty = [name for name, value in values.items() if value is None or not str(value).strip()]
    if empty:
        raise ConfigError(f"flow parameter(s) {empty} are empty. A deployment made from deployments/prefect.yaml "
                          "takes them from LOSSVAL_DATASETS, LOSSVAL_LANDING and LOSSVAL_WORKSPACE when it is "
                          "deployed: set those and deploy again, or pass the parameters to the run.")


def load_catalog(path: str | Path, *, check_configs: bool = True) -> list[DatasetEntry]:
    """Read and validate a datasets file; any bad entry is an error (see :func:`read_catalog` to skip them).

    Args:
        path: The YAML file.
        check_configs: Also load every pipeline config, so a bad one is reported now rather
            than at 02:00.

    Raises:
        ConfigError: unreadable file, missing or unknown keys, duplicate names or landing folders,
            or an invalid pipeline config; the message names the file and the entry, and every bad
            entry at once (one fix and restart per mistake was the way to find the next one).
    """
    if check_configs:
        return [entry for entry, _ in load_catalog_configs(path)]
    entries, problems = read_catalog(path)
    if problems:
        raise unusable_entries_error(path, [(problem.where, problem.error) for problem in problems])
    return entries


def load_catalog_configs(path: str | Path) -> list[tuple[DatasetEntry, PipelineConfig]]:
    """:func:`load_catalog`, with each entry's pipeline config as :meth:`DatasetEntry.load` gives it, loaded once.

    :func:`load_catalog` checks the configs and drops them; a caller that uses them too (``lossval serve``) takes
    them from here rather than loading each again.

    Raises:
        ConfigError: as :func:`load_catalog`.
    """
    entries, problems = read_catalog(path)
    found: list[tuple[str, InputError]] = [(problem.where, problem.error) for problem in problems]
    loaded: list[tuple[DatasetEntry, PipelineConfig]] = []
    for entry in entries:
        try:
            loaded.append((entry, entry.load()))
        except InputError as exc:  # a ConfigError, or a file the config names (pruning.keep_ids)
            found.append((entry.name, exc))
    if found:
        raise unusable_entries_error(path, found)
    return loaded


def unusable_entries_error(path: str | Path, found: list[tuple[str, InputError]]) -> InputError:
    """The one error that names every unusable entry of a datasets file (``found``: where, error; not empty).

    A single mistake is its own error, unchanged (a duplicate's error is its entries' one).
    """
    if len({id(exc) for _, exc in found}) == 1:
        return found[0][1]
    source = str(Path(path))
    shared: dict[int, tuple[list[str], str]] = {}  # a duplicate's one error, said once for all its entries
    for where, exc in found:
        text = str(exc).removeprefix(f"{source}: ") if exc.source == source else str(exc)
        shared.setdefault(id(exc), ([], text))[0].append(where)
    lines = [f"{', '.join(wheres)}: {text}" for wheres, text in shared.values()]
    return ConfigError(f"{len(found)} entries cannot be used; fix them all (each named by its name, or datasets[i] "
                       "without one): " + " ".join(f"({i}) {line}" for i, line in enumerate(lines, 1)), source=source,
                       parts=[f"{source}: {line}" for line in lines])


@dataclass(frozen=True)
class CatalogProblem:
    """A datasets-file entry that cannot be used: ``where`` is its name, or ``datasets[i]`` without one."""

    where: str
    landing: str | None
    error: ConfigError


def read_catalog(path: str | Path) -> tuple[list[DatasetEntry], list[CatalogProblem]]:
    """The usable entries of a datasets file, and one problem per entry that is not.

    A scheduled run uses this so that one bad entry (an edit with a typo) fails that dataset only,
    not every dataset in the file. Pipeline configs are not loaded here.

    Raises:
        ConfigError: the file itself is unreadable or not a list of entries.
    """
    parsed = read_catalog_entries(path)
    return ([e for e in parsed if isinstance(e, DatasetEntry)],
            [e for e in parsed if isinstance(e, CatalogProblem)])


def read_catalog_entries(path: str | Path) -> list[DatasetEntry | CatalogProblem]:
    """:func:`read_catalog`'s entries and problems together, one per entry in the datasets file's order (a report
    read against the file lists them so).

    Raises:
        ConfigError: the file itself is unreadable or not a list of entries.
    """
    p = Path(path)
    raw = read_yaml(p, what="datasets file")
    if not isinstance(raw, dict) or set(raw) != {"datasets"} or not isinstance(raw["datasets"], list):
        raise ConfigError("a datasets file is a mapping with one key, 'datasets', holding a list of entries "
                          "(name, config, landing).", source=str(p))
    if not raw["datasets"]:
        raise ConfigError("'datasets' is empty; list at least one dataset.", source=str(p))
    parsed: list[DatasetEntry | CatalogProblem] = []
    for i, item in enumerate(raw["datasets"]):
        try:
            parsed.append(_entry(item, f"datasets[{i}]", p))
        except ConfigError as exc:
            name = item.get("name") if isinstance(item, dict) else None
            landing = item.get("landing") or name if isinstance(item, dict) else None
            parsed.append(CatalogProblem(where=name if isinstance(name, str) and name else f"datasets[{i}]",
                                         landing=landing if isinstance(landing, str) else None, error=exc))
    for key in ("name", "landing"):
        # An unusable entry's name or landing counts too: a usable entry of the same name ran, and the nightly
        # report then held two records of one dataset, one failed, one not (its summary failed with a KeyError).
        values = [_value(e, key) for e in parsed]
        dupes = sorted({v for v in values if v is not None and values.count(v) > 1})
        if dupes:  # none of them is used: which one was meant is the editor's call
            at = ", ".join(f"datasets[{i}]" for i, v in enumerate(values) if v in dupes)
            error = ConfigError(f"duplicate {key}(s) {dupes}; each dataset needs its own (entries {at}): rename "
                                "or remove all but one", source=str(p))
            parsed = [CatalogProblem(where=e.name, landing=e.landing, error=error)
                      if isinstance(e, DatasetEntry) and getattr(e, key) in dupes else e for e in parsed]
    return parsed


def _value(entry: DatasetEntry | CatalogProblem, key: str) -> str | None:
    """An entry's ``name`` or ``landing``, usable or not (``None``: an unusable entry without a valid one)."""
    if isinstance(entry, DatasetEntry):
        return getattr(entry, key)
    value = entry.where if key == "name" else entry.landing
    return value if value is not None and DATASET_NAME_RE.fullmatch(value) else None


def _entry(item: object, where: str, p: Path) -> DatasetEntry:
    if not isinstance(item, dict):
        raise ConfigError(f"{where} must be a mapping with 'name', 'config' and optionally 'landing'.", source=str(p))
    unknown = sorted(set(item) - {"name", "config", "landing"})
    if unknown:
        import difflib

        near = [f"did you mean {m[0]!r} for {k!r}? " for k in unknown
                if (m := difflib.get_close_matches(str(k), ["config", "landing", "name"], n=1, cutoff=0.75))]
        raise ConfigError(f"{where}: unknown key(s) {unknown}; {''.join(near)}valid keys are ['config', 'landing', "
                          "'name'].", source=str(p))
    if not isinstance(item.get("config"), str) or not item["config"]:
        raise ConfigError(f"{where}: 'config' (path of a pipeline config) is required.", source=str(p))
    config_path = resolve_config_path(item["config"], p.parent)  # ~/configs/x.yaml: the home folder's
    name = item.get("name")
    if name is None:
        raise ConfigError(f"{where}: 'name' (the dataset name) is required.", source=str(p))
    landing = item.get("landing") or name
    for key, value in (("name", name), ("landing", landing)):
        if not isinstance(value, str) or not DATASET_NAME_RE.fullmatch(value):
            raise ConfigError(f"{where}: '{key}' {value!r} may only hold letters, digits, '.', '_' and '-'.",
                              source=str(p))
        if value.startswith("."):
            raise ConfigError(f"{where}: '{key}' {value!r} starts with '.': the watcher skips hidden names, so "
                              "its files would never land. Rename it.", source=str(p))
    return DatasetEntry(name=name, config_path=str(config_path), landing=landing)


def entry_for_landing(entries: list[DatasetEntry], landing: str, *, source: str | None = None,
                      problems: list[CatalogProblem] = ()) -> DatasetEntry:
    """The entry whose landing subfolder (or top-level file prefix) is ``landing``.

    Raises:
        ConfigError: no entry has that landing name; or the entry for it is one of ``problems``
            (then that entry's error).
    """
    for entry in entries:
        if entry.landing == landing:
            return entry
    for problem in problems:
        if problem.landing == landing:
            raise problem.error
    known = sorted(e.landing for e in entries)
    unusable = f"; entries that cannot be used: {[p.where for p in problems]}" if problems else ""
    raise ConfigError(f"no dataset in the datasets file lands in {landing!r} (known: {known}{unusable}); add an "
                      f"entry with landing: {landing} or move the file.", source=source)
