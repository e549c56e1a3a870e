"""Smoke tests of the benchmark harness on tiny configurations (in-process, outputs under tmp_path)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `benchmarks` lives next to `lossval`, not inside the package
    sys.path.insert(0, str(REPO_ROOT))

pytestmark = pytest.mark.timeout(120)


def test_quality_run_writes_json_and_markdown(tmp_path: Path) -> None:
    from benchmarks import run

    paths = run.main(["--quick", "--only", "cls_breast_cancer,reg_diabetes", "--noise", "label",
                      "--epochs", "3", "--out-dir", str(tmp_path)])
    assert paths["json"] == tmp_path / "quality.json" and paths["md"] == tmp_path / "quality.md"
    payload = json.loads(paths["json"].read_text())
    assert set(payload) == {"meta", "config", "targets", "overall", "records"}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files

    records = payload["records"]
    methods = {r["method"] for r in records}
    assert {"lossval", "lossval_paper", "loss_mixture", "plain_loss"} <= methods
    # Peers run on classification only, and only when cleanlab is installed.
    peers = {r["method"] for r in records if r["method"].startswith("cleanlab")}
    assert all(r["task"] == "classification" for r in records if r["method"] in peers)
    for r in records:
        assert r["status"] == "ok"
        assert 0.0 <= r["f1_2means"] <= 1.0 and 0.0 <= r["f1_top"] <= 1.0
        assert r["valid"] == "clean" and r["noise"] == "label" and r["seed"] == 0
        assert r["n_noisy"] == round(0.1 * r["n_train"])  # inject_noise's exact count
        assert 0 <= r["n_flagged"] < r["n_train"]
    # One record per (dataset, method); the pruning fields only on LossVal methods.
    assert len(records) == len({(r["dataset"], r["method"]) for r in records})
    for r in records:
        has_prune = r["method"] in ("lossval", "lossval_paper")
        assert ("prune_after" in r) == has_prune
        if has_prune:
            assert r["n_dropped"] == r["n_flagged"]
            if r["task"] == "classification":
                assert 0.0 <= r["prune_before"] <= 1.0 and 0.0 <= r["prune_oracle"] <= 1.0
    # loss_mixture reuses the lossval fit, so it can never be faster than that fit.
    for ds in ("cls_breast_cancer", "reg_diabetes"):
        by = {r["method"]: r for r in records if r["dataset"] == ds}
        assert by["loss_mixture"]["seconds"] >= by["lossval"]["seconds"]

    assert [t["pass"] in (True, False, None) for t in payload["targets"]] == [True, True, True]
    overall = {(o["kind"], o["method"]): o for o in payload["overall"]}
    mean = sum(r["f1_2means"] for r in records if r["task"] == "regression" and r["method"] == "lossval")
    assert math.isclose(overall[("reg", "lossval")]["f1_2means"], mean)

    md = paths["md"].read_text()
    assert "## TARGETS" in md and "## Overall means" in md and "set_num_threads(1)" in md
    assert "| 0.1 | clean | label | reg | lossval |" in md
    # Reference figures are shown for lossval_paper / plain_loss (10% noise).
    assert "| 0.1 | clean | label | reg | plain_loss | 1 |" in md


def test_variant_option_parses_kwargs() -> None:
    from benchmarks.run import parse_args

    cfg = parse_args(["--variant", "v1:weight_lr=0.03,val_subsample=None,blur=0.05,average_last=10",
                      "--methods", "lossval,v1", "--only", "reg_fried"])
    assert cfg.methods == ["lossval", "v1"]
    assert cfg.variants == {"v1": {"weight_lr": 0.03, "val_subsample": None, "blur": 0.05, "average_last": 10}}
    assert cfg.datasets == ["reg_fried"] and cfg.seeds == [0, 1, 2] and cfg.valid_settings == ["clean", "noisy"]


def test_speed_run_writes_json(tmp_path: Path) -> None:
    from benchmarks import speed

    paths = speed.main(["--rows", "200", "--epochs", "2", "--repeats", "1", "--sizes", "300",
                        "--out-dir", str(tmp_path)])
    res = json.loads((tmp_path / "speed.json").read_text())
    assert paths["md"].exists()
    block = res["base"]["default_threads"]
    assert block["lossval"]["median"] > 0 and block["plain"]["median"] > 0
    # One interleaved pair: the ratio is that pair's ratio.
    assert block["ratios_lossval"] == [block["lossval"]["runs"][0] / block["plain"]["runs"][0]]
    assert math.isclose(block["ratio_lossval"], block["ratios_lossval"][0])
    # The stock-optimiser baseline is timed in the same group and reported beside, not instead.
    assert block["ratios_lossval_vs_plain_torch_adam"] == [
        block["lossval"]["runs"][0] / block["plain_torch_adam"]["runs"][0]]
    assert "plain_torch_adam" in paths["md"].read_text()
    assert res["base"]["one_thread"]["threads"] == 1
    (child,) = res["scaling"]
    assert child["rows"] == 300 and "error" not in child
    assert child["peak_rss_mb"] >= child["rss_before_mb"] > 0
    assert math.isclose(child["seconds_per_1k_rows"], child["seconds"] / 0.3)
    # The 100k-row targets were not run, so they are neither passed nor failed.
    assert [t["pass"] for t in res["targets"]][2:] == [None, None]
