"""The datasets file, and the valuation_deployment config key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lossval.catalog import entry_for_landing, load_catalog, read_catalog
from lossval.config import config_from_dict
from lossval.errors import ConfigError


def _write(path: Path, obj) -> Path:
    path.write_text(yaml.safe_dump(obj))
    return path


@pytest.fixture()
def config_file(tmp_path: Path) -> Path:
    (tmp_path / "cfg").mkdir()
    return _write(tmp_path / "cfg" / "loans.yaml", {"data": "loans.csv", "target": "y", "dataset": "from-config"})


def test_entries_resolve_paths_against_the_file_and_default_landing_to_name(tmp_path: Path, config_file: Path) -> None:
    path = _write(tmp_path / "datasets.yaml", {"datasets": [
        {"name": "loans", "config": "cfg/loans.yaml"},
        {"name": "loans2", "config": str(config_file), "landing": "incoming-loans"}]})
    entries = load_catalog(path)
    assert [(e.name, e.landing) for e in entries] == [("loans", "loans"), ("loans2", "incoming-loans")]
    assert entries[0].config_path == str(config_file.resolve())
    config = entries[1].load(data="/landing/incoming-loans/x.csv")
    assert config.dataset == "loans2" and config.data == "/landing/incoming-loans/x.csv"
    assert entry_for_landing(entries, "incoming-loans").name == "loans2"
    with pytest.raises(ConfigError, match="no dataset in the datasets file lands in 'other'"):
        entry_for_landing(entries, "other")


def test_a_config_path_with_a_tilde_is_in_the_home_folder(tmp_path: Path, config_file: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # As in the pipeline config: "~/..." was read as a folder named "~" beside the datasets file ("not found").
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "deploy").mkdir()
    path = _write(tmp_path / "deploy" / "datasets.yaml", {"datasets": [{"name": "loans", "config": "~/cfg/loans.yaml"},
                                                                        {"name": "other", "config": "$HOME/x.yaml"}]})
    entries, problems = read_catalog(path)
    assert [e.config_path for e in entries] == [str(config_file), str(tmp_path / "deploy" / "$HOME" / "x.yaml")]
    assert load_catalog(path, check_configs=False)[0].load().dataset == "loans" and problems == []


@pytest.mark.parametrize(("content", "message"), [
    ({"datasets": []}, "'datasets' is empty"),
    ({"sets": []}, "one key, 'datasets'"),
    ({"datasets": [{"config": "cfg/loans.yaml"}]}, r"datasets\[0\]: 'name'"),
    ({"datasets": [{"name": "a"}]}, r"datasets\[0\]: 'config'"),
    ({"datasets": [{"name": "a", "config": "cfg/loans.yaml", "cron": "x"}]}, r"unknown key\(s\) \['cron'\]"),
    ({"datasets": [{"name": "a", "config": "cfg/loans.yaml", "landng": "x"}]},
     r"unknown key\(s\) \['landng'\]; did you mean 'landing' for 'landng'\? valid keys"),
    ({"datasets": [{"name": "../a", "config": "cfg/loans.yaml"}]}, "may only hold"),
    ({"datasets": [{"name": ".loans", "config": "cfg/loans.yaml"}]}, r"'name' '\.loans' starts with '\.'"),
    ({"datasets": [{"name": "a", "config": "cfg/loans.yaml", "landing": ".in"}]}, "watcher skips hidden names"),
    ({"datasets": [{"name": "a", "config": "cfg/loans.yaml"}, {"name": "a", "config": "cfg/loans.yaml"}]},
     r"duplicate name\(s\) \['a'\]; each dataset needs its own(?!\.)"),
    ({"datasets": [{"name": "a", "config": "cfg/none.yaml"}]}, "config file not found"),
])
def test_bad_datasets_files_name_the_entry(tmp_path: Path, config_file: Path, content, message: str) -> None:
    path = _write(tmp_path / "datasets.yaml", content)
    with pytest.raises(ConfigError, match=message) as info:
        load_catalog(path)
    assert "datasets.yaml" in str(info.value) or "none.yaml" in str(info.value)


def test_a_bad_entry_is_set_aside_and_named_while_the_others_stay_usable(tmp_path: Path, config_file: Path) -> None:
    path = _write(tmp_path / "datasets.yaml", {"datasets": [
        {"name": "loans", "config": "cfg/loans.yaml"},
        {"name": "cards", "config": "cfg/loans.yaml", "cron": "x"},  # a typo'd key
        {"config": "cfg/loans.yaml"},  # no name
        {"name": "a", "config": "cfg/loans.yaml", "landing": "shared"},
        {"name": "b", "config": "cfg/loans.yaml", "landing": "shared"}]})
    entries, problems = read_catalog(path)
    assert [e.name for e in entries] == ["loans"]
    assert [(p.where, p.landing) for p in problems] == [("cards", "cards"), ("datasets[2]", None), ("a", "shared"),
                                                        ("b", "shared")]
    assert "unknown key(s) ['cron']" in str(problems[0].error) and "duplicate landing" in str(problems[2].error)
    assert entry_for_landing(entries, "loans", problems=problems).name == "loans"
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['cron'\]"):  # the entry's own error, not "unknown"
        entry_for_landing(entries, "cards", problems=problems)
    with pytest.raises(ConfigError, match=r"no dataset .* lands in 'other' .*cannot be used: \['cards'"):
        entry_for_landing(entries, "other", problems=problems)
    with pytest.raises(ConfigError, match="unknown key"):  # the strict reader still refuses the whole file
        load_catalog(path, check_configs=False)


def test_a_name_or_landing_an_unusable_entry_repeats_sets_the_usable_entry_aside_too(tmp_path: Path,
                                                                                     config_file: Path) -> None:
    # Both are the dataset 'loans' to the reader: the usable one ran, and the nightly report held two 'loans'.
    path = _write(tmp_path / "datasets.yaml", {"datasets": [
        {"name": "loans", "config": "cfg/loans.yaml"},
        {"name": "loans", "config": "cfg/loans.yaml", "landing": "loans-eu", "cron": "x"},
        {"name": "cards", "config": "cfg/loans.yaml"},
        {"name": "cards2", "config": "cfg/loans.yaml", "landing": "cards", "cron": "x"},
        {"name": "ok", "config": "cfg/loans.yaml"}]})
    entries, problems = read_catalog(path)
    assert [e.name for e in entries] == ["ok"]
    assert [(p.where, p.landing) for p in problems] == [("loans", "loans"), ("loans", "loans-eu"), ("cards", "cards"),
                                                        ("cards2", "cards")]
    assert str(problems[0].error).endswith("duplicate name(s) ['loans']; each dataset needs its own "
                                           "(entries datasets[0], datasets[1]): rename or remove all but one")
    assert "duplicate landing(s) ['cards']" in str(problems[2].error) and "datasets[2], datasets[3]" in str(
        problems[2].error)
    assert "unknown key(s) ['cron']" in str(problems[1].error)  # the unusable entry keeps its own error


def test_the_strict_reader_names_every_bad_entry_and_config_at_once(tmp_path: Path, config_file: Path) -> None:
    # `lossval serve` said the first mistake only: one fix and restart per mistake to find the next.
    path = _write(tmp_path / "datasets.yaml", {"datasets": [
        {"name": "loans", "config": "cfg/loans.yaml"},
        {"name": "cards", "config": "cfg/loans.yaml", "landng": "x"},
        {"name": "rates", "config": "cfg/none.yaml"},
        {"name": "a", "config": "cfg/loans.yaml", "landing": "shared"},
        {"name": "b", "config": "cfg/loans.yaml", "landing": "shared"}]})
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    message = str(info.value)
    assert message.startswith(f"{path}: 4 entries cannot be used; fix them all"), message
    assert "(1) cards: datasets[1]: unknown key(s) ['landng']" in message
    assert "(2) a, b: duplicate landing(s) ['shared']" in message  # said once for both
    assert f"(3) rates: {tmp_path / 'cfg' / 'none.yaml'}: config file not found" in message
    assert "loans" not in message.replace("loans.yaml", "")  # the usable entry is not blamed


def test_valuation_deployment_is_validated() -> None:
    base = {"data": "/d.csv", "target": "y"}
    assert config_from_dict(base).valuation_deployment is None
    assert config_from_dict({**base, "valuation_deployment": "lossval-value/gpu"}).valuation_deployment == "lossval-value/gpu"
    for bad in ("gpu", "a/b/c", 3):
        with pytest.raises(ConfigError, match="valuation_deployment"):
            config_from_dict({**base, "valuation_deployment": bad})


def test_empty_flow_parameters_are_refused_naming_the_deploy_variables() -> None:
    from lossval.catalog import require_flow_parameters

    require_flow_parameters(datasets_file="d.yaml", workspace="ws")
    with pytest.raises(ConfigError, match=r"\['datasets_file', 'workspace'\] are empty.*LOSSVAL_DATASETS"):
        require_flow_parameters(datasets_file="", workspace="  ", landing_dir="landing")
