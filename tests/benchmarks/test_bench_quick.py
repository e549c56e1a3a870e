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

    # Every method ranks the flipped labels far above chance (F1 of a random lowest 10% is ~0.1):
    # a score read with the wrong sign (loss for value, P(noisy) for P(clean)) lands near 0.
    for r in records:
        if r["task"] == "classification":
            assert r["f1_top"] >= 0.3, (r["method"], r["f1_top"])
        elif r["method"] in ("loss_mixture", "plain_loss"):
            assert r["f1_top"] >= 0.2, (r["method"], r["f1_top"])
    assert [t["target"].split(" ")[0] for t in payload["targets"]] == ["lossval", "lossval", "dropping"]
    assert payload["targets"] == run.evaluate_targets(records, [])  # what the file says is what the records give
    overall = {(o["kind"], o["method"]): o for o in payload["overall"]}
    mean = sum(r["f1_2means"] for r in records if r["task"] == "regression" and r["method"] == "lossval")
    assert math.isclose(overall[("reg", "lossval")]["f1_2means"], mean)

    md = paths["md"].read_text()
    assert "## TARGETS" in md and "## Overall means" in md and "set_num_threads(1)" in md
    assert "## lossval against the others, per noise rate" in md
    assert "| 0.1 | clean | label | reg | lossval |" in md
    # Reference figures are shown for lossval_paper / plain_loss (10% noise).
    assert "| 0.1 | clean | label | reg | plain_loss | 1 |" in md
    # ...and per dataset, next to the paper-settings row, with the difference computed.
    paper = next(r for r in records if r["dataset"] == "cls_breast_cancer" and r["method"] == "lossval_paper")
    ref = run.REFERENCE_CLEAN[("cls_breast_cancer", "label")]
    assert (f"| cls_breast_cancer | label | {paper['f1_2means']:.3f} | {ref[0]:.3f} | "
            f"{paper['f1_2means'] - ref[0]:+.3f} |") in md

    # --from-json merges parts (here: the lossval records and the rest, as when one method is
    # rerun): records united, each part's date and command kept, in order.
    lv = dict(payload, records=[r for r in records if r["method"] == "lossval"],
              meta=dict(payload["meta"], generated="2026-01-02 03:04:05", command="python -m benchmarks.run rerun"))
    rest = dict(payload, records=[r for r in records if r["method"] != "lossval"])
    (tmp_path / "a.json").write_text(json.dumps(rest))
    (tmp_path / "b.json").write_text(json.dumps(lv))
    merged_paths = run.main(["--from-json", f"{tmp_path / 'a.json'},{tmp_path / 'b.json'}",
                             "--out-dir", str(tmp_path / "merged")])
    merged = json.loads(merged_paths["json"].read_text())
    key = lambda r: (r["dataset"], r["method"])  # noqa: E731
    assert sorted(map(key, merged["records"])) == sorted(map(key, records))
    assert merged["meta"]["generated"] == f"{payload['meta']['generated']} + 2026-01-02 03:04:05"
    assert merged["meta"]["command"].endswith(" + python -m benchmarks.run rerun")
    assert merged["targets"] == payload["targets"]
    # Files run with other --epochs, or with one variant name meaning two settings, are refused: the table would label
    # every record with one file's settings (seen by a reviewer: 2- and 30-epoch records shown as "Epochs: 2").
    (tmp_path / "c.json").write_text(json.dumps(dict(lv, config=dict(payload["config"], epochs=2))))
    with pytest.raises(SystemExit, match=r"different --epochs"):
        run.main(["--from-json", f"{tmp_path / 'a.json'},{tmp_path / 'c.json'}", "--out-dir", str(tmp_path / "m2")])
    (tmp_path / "d.json").write_text(json.dumps(dict(rest, config=dict(payload["config"], variants={"v": {"blur": 1.0}}))))
    (tmp_path / "e.json").write_text(json.dumps(dict(lv, config=dict(payload["config"], variants={"v": {"blur": 2.0}}))))
    with pytest.raises(SystemExit, match=r"variant 'v' is \{'blur': 1.0\} in one file and \{'blur': 2.0\}"):
        run.main(["--from-json", f"{tmp_path / 'd.json'},{tmp_path / 'e.json'}", "--out-dir", str(tmp_path / "m3")])


def test_variant_option_parses_kwargs() -> None:
    from benchmarks.run import parse_args

    cfg = parse_args(["--variant", "v1:weight_lr=0.03,val_subsample=None,blur=0.05,average_last=10",
                      "--methods", "lossval,v1", "--only", "reg_fried"])
    assert cfg.methods == ["lossval", "v1"]
    assert cfg.variants == {"v1": {"weight_lr": 0.03, "val_subsample": None, "blur": 0.05, "average_last": 10}}
    assert cfg.datasets == ["reg_fried"] and cfg.seeds == [0, 1, 2] and cfg.valid_settings == ["clean", "noisy"]


def test_fractions_default_to_the_suite_and_are_checked() -> None:
    from benchmarks.run import parse_args

    assert parse_args([]).fractions == [0.05, 0.1, 0.15, 0.2]
    assert parse_args(["--quick"]).fractions == [0.1]
    # A quick run never replaces the committed full results that the README quotes.
    from benchmarks.run import RESULTS_DIR

    assert parse_args([]).out_dir == str(RESULTS_DIR)
    assert parse_args(["--quick"]).out_dir == str(RESULTS_DIR / "quick")
    assert parse_args(["--quick", "--out-dir", "x"]).out_dir == "x"
    assert parse_args(["--fractions", "0.2,0.05"]).fractions == [0.2, 0.05]
    for bad in ("0,0.1", "1.5", "ten"):
        with pytest.raises(SystemExit, match="--fractions"):
            parse_args(["--fractions", bad])


def test_lossval_vs_others_picks_best_rival_per_group() -> None:
    from benchmarks.run import lossval_vs_others

    def rec(method: str, f1: float, fraction: float = 0.1, seed: int = 0) -> dict:
        return {"fraction": fraction, "valid": "clean", "noise": "label", "task": "regression", "method": method,
                "f1_2means": f1, "f1_top": f1, "seconds": 1.0, "frac_negative": 0.0, "n_flagged": 1,
                "n_noisy": 1, "dataset": "reg_fried", "seed": seed}

    records = [rec("lossval", 0.5), rec("lossval", 0.7, seed=1), rec("loss_mixture", 0.65), rec("loss_mixture", 0.65, seed=1),
               rec("lossval_paper", 0.4), rec("myvariant", 0.9), rec("lossval", 0.3, fraction=0.2),
               rec("plain_loss", 0.35, fraction=0.2)]
    rows = lossval_vs_others(records, ["myvariant"])  # variants never count as rivals
    assert [(r["fraction"], r["best_other"]) for r in rows] == [(0.1, "loss_mixture"), (0.2, "plain_loss")]
    assert math.isclose(rows[0]["lossval"], 0.6) and math.isclose(rows[0]["margin"], -0.05)
    assert rows[0]["paper"] == 0.4 and rows[1]["paper"] is None
    assert math.isclose(rows[1]["margin"], -0.05)


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
    # Regression: its own interleaved pair, and its own targets next to classification's.
    reg = res["base"]["regression"]
    assert reg["ratios_lossval"] == [reg["lossval"]["runs"][0] / reg["plain"]["runs"][0]]
    assert "rows, regression" in paths["md"].read_text()
    names = [t["target"] for t in res["targets"]]
    assert [n.startswith("regression:") for n in names] == [False, False, True, True, False, False]
    assert res["targets"][3]["pass"] == (reg["ratio_lossval"] <= speed.TARGET_RATIO)
    # The 100k-row targets were not run, so they are neither passed nor failed.
    assert [t["pass"] for t in res["targets"]][4:] == [None, None]


def test_clean_data_run_writes_json_and_markdown(tmp_path: Path) -> None:
    from benchmarks import clean_data

    paths = clean_data.main(["--only", "cls_breast_cancer,reg_diabetes", "--seeds", "1", "--epochs", "3",
                             "--out-dir", str(tmp_path)])
    payload = json.loads(paths["json"].read_text())
    records = payload["records"]
    by = {(r["dataset"], r["method"]): r for r in records}
    assert {("cls_breast_cancer", "lossval two_means"), ("cls_breast_cancer", "lossval mixture"),
            ("reg_diabetes", "lossval two_means"), ("reg_diabetes", "lossval mixture")} <= set(by)
    assert not any(d == "reg_diabetes" and m.startswith("cleanlab") for d, m in by)  # classification only
    for r in records:
        if r["method"].startswith("lossval"):  # pruned as a run prunes: under the cap, which it reports
            budget = int(clean_data.MAX_PRUNE_FRACTION * r["n_train"])
            assert r["dropped"] <= budget
            if r["cap_hit"]:  # the cap holds for all rows and, in classification, for each class
                assert r["dropped"] < r["flagged"] and (r["dropped"] == budget or r["task"] == "classification")
            elif r["task"] == "regression":  # no class protection: every flagged row goes
                assert r["dropped"] == r["flagged"]
            assert 0.0 <= r["split_share"] <= 1.0
    summary = {(s["dataset"], s["method"]): s for s in payload["summary"]}
    s = summary[("reg_diabetes", "lossval two_means")]
    r = by[("reg_diabetes", "lossval two_means")]
    assert math.isclose(s["delta"], r["after"] - r["before"]) and s["seeds_worse"] == int(r["after"] < r["before"])
    assert s["seeds_cap_hit"] == int(r["cap_hit"])
    shares = {(x["task"], x["setting"]): x for x in payload["split_shares"]}
    assert set(shares) == {(t, k) for t in ("classification", "regression")
                           for k in ("no noise", "0.05 label noise", "0.05 feature noise")}
    assert shares[("regression", "no noise")]["min"] == r["split_share"]  # one fit: min = max = its share
    md = paths["md"].read_text()
    assert "| reg_diabetes | lossval two_means |" in md and "## Mean over datasets" in md
    assert "| regression | 0.05 label noise | 1 |" in md
    # Classification fits carry the log-loss before and after; regression ones do not.
    c = by[("cls_breast_cancer", "lossval two_means")]
    assert c["before_log_loss"] > 0 and c["after_log_loss"] > 0 and "after_log_loss" not in r
    sc = summary[("cls_breast_cancer", "lossval two_means")]
    assert sc["seeds_log_loss_up"] == int(c["after_log_loss"] > c["before_log_loss"])
    assert (f"| cls_breast_cancer | lossval two_means | {c['before']:.3f} -> {c['after']:.3f} | "
            f"{c['before_log_loss']:.3f} -> {c['after_log_loss']:.3f} |") in md
    # The accuracy-vs-log-loss table: 10% label noise, classification sets only, one row per seed.
    (cal,) = payload["calibration"]
    assert cal["dataset"] == "cls_breast_cancer" and cal["fraction"] == 0.1 and cal["dropped"] > 0
    assert 0.0 <= cal["after_accuracy"] <= 1.0 and cal["after_log_loss"] > 0
    assert "## Accuracy and log-loss with 0.1 label noise" in md


def test_ambiguous_labels_run_writes_json_and_markdown(tmp_path: Path) -> None:
    from benchmarks import ambiguous_labels

    paths = ambiguous_labels.main(["--rows", "1500", "--seeds", "1", "--epochs", "3", "--noise-sds", "0,1",
                                   "--out-dir", str(tmp_path)])
    assert paths == {"json": tmp_path / "ambiguous_labels.json", "md": tmp_path / "ambiguous_labels.md"}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files
    payload = json.loads(paths["json"].read_text())
    records = payload["records"]
    assert [(r["noise_sd"], r["seed"]) for r in records] == [(0.0, 0), (1.0, 0)]
    for r in records:
        # latest 10% of 1500 rows for validation, 20% of the rest for testing; 10% of the training labels flipped
        assert (r["n_valid"], r["n_test"], r["n_train"]) == (150, 270, 1080) and r["flipped"] == 108
        assert r["dropped"] <= r["flagged"] and r["dropped"] <= int(0.2 * r["n_train"])  # the default cap holds
        for key in ("flagged_precision", "flagged_recall", "dropped_precision", "dropped_recall", "auc",
                    "accuracy_before", "accuracy_after", "accuracy_oracle"):
            assert 0.0 <= r[key] <= 1.0, (key, r[key])
        assert r["dropped_recall"] <= r["flagged_recall"]  # the dropped rows are among the flagged ones
        assert r["gate_promotes"] == (r["gate_refusals"] == [])
        assert 0.0 < r["log_loss_oracle"] < 10.0 and r["log_loss_oracle"] != r["log_loss_before"]  # its own fit
    # With labels a function of the features, the flipped rows' values rank far below the clean ones'
    # (a value read with the wrong sign gives an AUC near 0).
    assert records[0]["auc"] >= 0.8
    md = paths["md"].read_text()
    assert f"| 0 | 0 | 1,080 | 108 | {records[0]['flagged']:,} (" in md and "| 1 | 0 | 1,080 | 108 |" in md
    for r in records:  # the oracle beside before -> after, in the table
        assert f"{r['accuracy_before']:.4f} -> {r['accuracy_after']:.4f} ({r['accuracy_oracle']:.4f})" in md
        assert f"{r['log_loss_before']:.3f} -> {r['log_loss_after']:.3f} ({r['log_loss_oracle']:.3f})" in md


def test_ambiguous_labels_data_differ_only_in_labels_and_auc_is_a_rank_score() -> None:
    import numpy as np

    from benchmarks.ambiguous_labels import TARGET, auc_of_values, make_churn_data

    clear, blurred = make_churn_data(4000, 0.0, seed=3), make_churn_data(4000, 1.0, seed=3)
    assert clear.drop(columns=TARGET).equals(blurred.drop(columns=TARGET))  # same rows, same signal
    changed = (clear[TARGET] != blurred[TARGET]).mean()
    assert 0.1 < changed < 0.5  # the noise is as large as the signal: many labels go the other way
    assert abs(clear[TARGET].mean() - 0.27) < 0.01 and abs(blurred[TARGET].mean() - 0.27) < 0.01
    assert make_churn_data(4000, 1.0, seed=3).equals(blurred)  # seeded
    flipped = np.array([True, True, False, False, False])
    assert auc_of_values(np.array([0.1, 0.2, 0.5, 0.6, 0.7]), flipped) == 1.0  # flipped rows lowest
    assert auc_of_values(np.array([0.9, 0.8, 0.5, 0.6, 0.7]), flipped) == 0.0  # read with the wrong sign
    assert auc_of_values(np.full(5, 0.4), flipped) == 0.5  # all tied: chance
    assert auc_of_values(np.array([0.1, 0.6, 0.5, 0.7, 0.2]), flipped) == pytest.approx(4 / 6)



def test_split_share_of_two_clear_groups_and_of_no_split() -> None:
    import numpy as np

    from benchmarks.clean_data import split_share

    two = np.r_[np.zeros(10), np.ones(30)]  # all variance between the groups
    assert math.isclose(split_share(two), 1.0)
    assert math.isclose(split_share(two + np.r_[np.zeros(39), 0.1]), 1.0, rel_tol=0.02)
    assert math.isnan(split_share(np.full(5, 0.3)))


def test_detection_scores_on_perfect_and_inverted_values() -> None:
    import numpy as np

    from benchmarks.run import detection_scores

    noisy = np.zeros(100, dtype=bool)
    noisy[:10] = True
    perfect = np.where(noisy, 0.1, 1.0) + np.linspace(0, 0.01, 100)  # noisy rows lowest, in a cluster
    good = detection_scores(perfect, noisy, 0.1)
    assert good["f1_2means"] == 1.0 and good["f1_top"] == 1.0 and good["n_flagged"] == 10
    bad = detection_scores(-perfect, noisy, 0.1)  # the same scores read with the wrong sign
    assert bad["f1_2means"] == 0.0 and bad["f1_top"] == 0.0


def _pruned(before: float, after: float, oracle: float, **key) -> dict:
    return {"method": "lossval", "fraction": 0.1, "valid": "clean", "noise": "label", "task": "classification",
            "prune_before": before, "prune_after": after, "prune_oracle": oracle, **key}


def test_gap_recovered_is_a_ratio_of_sums_with_a_floor() -> None:
    from benchmarks.run import MIN_PRUNE_GAP, gap_recovered

    # seed 2's gap is tiny: a mean of per-seed ratios would be (0.5 + 1.0 + 50) / 3
    rs = [_pruned(0.80, 0.85, 0.90), _pruned(0.80, 0.90, 0.90), _pruned(0.90, 0.95, 0.901)]
    assert math.isclose(gap_recovered(rs), (0.05 + 0.10 + 0.05) / (0.10 + 0.10 + 0.001))
    assert gap_recovered([_pruned(0.9, 0.95, 0.9 + MIN_PRUNE_GAP / 2)]) is None  # below the floor: n/a
    assert gap_recovered([{"method": "plain_loss"}]) is None  # nothing pruned


def test_targets_fail_when_the_figures_say_so() -> None:
    from benchmarks.run import evaluate_targets

    def rec(method: str, f1: float) -> dict:
        return {"fraction": 0.1, "valid": "clean", "noise": "label", "task": "classification", "method": method,
                "f1_2means": f1, "f1_top": f1, "seconds": 1.0, "frac_negative": 0.0, "n_flagged": 1, "n_noisy": 1,
                "dataset": "cls_fried", "seed": 0}

    ahead = [rec("lossval", 0.70), rec("lossval_paper", 0.60), rec("plain_loss", 0.65)]
    best, margin, _ = evaluate_targets(ahead, [])
    assert best["pass"] is True and margin["pass"] is True
    behind = [rec("lossval", 0.70), rec("lossval_paper", 0.68), rec("plain_loss", 0.72)]
    best, margin, _ = evaluate_targets(behind, [])
    assert best["pass"] is False and margin["pass"] is False  # a rival is ahead; +0.02 < +0.05
    assert evaluate_targets(behind, ["plain_loss"])[0]["pass"] is True  # a variant is never a rival
    half = [{**rec("lossval", 0.7), **_pruned(0.80, 0.84, 0.90)}]  # 40% of the gap recovered
    assert evaluate_targets(half, [])[2]["pass"] is False
    assert evaluate_targets([{**rec("lossval", 0.7), **_pruned(0.80, 0.86, 0.90)}], [])[2]["pass"] is True


def test_cells_use_the_paper_settings_and_a_noised_validation_split() -> None:
    import numpy as np

    from benchmarks.run import _cell_data, _lossval_model, parse_args
    from lossval import LossVal

    cfg = parse_args([])
    paper = _lossval_model("lossval_paper", "regression", 0, cfg).get_params()
    expected = LossVal.paper_settings("regression", verbose=False, seed=0, device="cpu").get_params()
    assert paper == expected and paper != _lossval_model("lossval", "regression", 0, cfg).get_params()
    data = _cell_data("cls_breast_cancer", "label", 0.1, 0)
    (Xc, yc), (Xn, yn) = data["valid"]["clean"], data["valid"]["noisy"]
    assert np.array_equal(Xc, Xn) and int((yc != yn).sum()) == round(0.1 * len(yc))  # labels flipped, features kept
    assert data["noisy"].sum() == round(0.1 * len(data["y"]))


def test_target_noise_option_reaches_the_generated_sets_only(tmp_path: Path) -> None:
    import numpy as np

    from benchmarks import run

    assert run.parse_args([]).target_noise is None and run.parse_args(["--target-noise", "1"]).target_noise == 1.0
    suite = run._cell_data("reg_2dplanes", "feature", 0.1, 0)
    quiet = run._cell_data("reg_2dplanes", "feature", 0.1, 0, target_noise=0.0)
    assert not np.allclose(suite["y"], quiet["y"])  # the target noise is part of the data
    assert np.array_equal(suite["noisy"], quiet["noisy"])  # same rows noised
    bundled = run._cell_data("cls_breast_cancer", "label", 0.1, 0, target_noise=1.0)  # ignored, not an error
    assert np.array_equal(bundled["y"], run._cell_data("cls_breast_cancer", "label", 0.1, 0)["y"])
    # Records carry their data's noise; merges refuse to mix data or to count a cell twice.
    rec = {"dataset": "reg_2dplanes", "task": "regression", "noise": "label", "fraction": 0.1, "seed": 0,
           "valid": "clean", "method": "lossval", "target_noise": 2.0}
    assert run._record_noise(rec) == 2.0 and run._record_noise({**rec, "dataset": "reg_diabetes"}) is None
    assert run._record_noise({**rec, "dataset": "reg_fried", "target_noise": None}) == 1.0  # fried never changed
    run._check_mergeable([rec, {**rec, "seed": 1}, {**rec, "dataset": "reg_fried", "target_noise": None}], ["x"])
    for bad, match in (([{**rec, "target_noise": None}], "written before"),  # old 2dplanes
                       ([rec, {**rec, "seed": 1, "target_noise": 1.0}], "different target noise"),
                       ([rec, dict(rec)], "more than one record")):
        with pytest.raises(SystemExit, match=match):
            run._check_mergeable(bad, ["x"])
    assert run._target_noise_text([rec, {**rec, "dataset": "cls_fried", "target_noise": 1.0}]) == "2dplanes sd 2, fried sd 1"
    for bad_sd in ("-1", "nan", "inf", "x"):
        with pytest.raises(SystemExit):
            run.parse_args(["--target-noise", bad_sd])


def test_gpu_benchmark_refuses_without_cuda_and_renders_its_tables(tmp_path: Path) -> None:
    import torch

    from benchmarks import gpu

    if not torch.cuda.is_available():
        with pytest.raises(SystemExit) as exit_info:
            gpu.main(["--out-dir", str(tmp_path)])
        assert exit_info.value.code == 2 and not list(tmp_path.iterdir())  # nothing half-written
    res = {"meta": {"generated": "g", "command": "python -m benchmarks.gpu", "device": "NVIDIA H200",
                    "torch": "2.11", "python": "3.12"},
           "agreement": [{"data": "reg_fried, label noise 10%, seed 0", "pearson_r": 0.99, "max_abs_diff": 0.01,
                          "flags_in_common": 0.95, "flagged_cpu": 101, "flagged_gpu": 99, "f1_cpu": 0.63,
                          "f1_gpu": 0.61}],
           "speed": [{"rows": 1000, "epochs": 30, "lossval_s": [1.0, 1.2], "plain_s": [0.8, 0.9],
                      "lossval_median_s": 1.1, "plain_median_s": 0.85, "ratio": 1.3, "s_per_1k_rows": 1.1,
                      "peak_cuda_mb": 42.0, "lossval_no_graphs_s": [5.0, 6.0], "lossval_no_graphs_median_s": 5.5,
                      "retrain_s": 0.07, "retrain_no_graphs_s": 0.56},
                     {"rows": 100000, "epochs": 30, "lossval_s": [13.0], "plain_s": [11.0], "lossval_median_s": 13.0,
                      "plain_median_s": 11.0, "ratio": 1.18, "s_per_1k_rows": 0.13, "peak_cuda_mb": 200.0}],
           "launches": [{"rows": 1000, "epochs": 2, "steps": 64, "graphs": True, "host_syncs": 17,
                         "kernel_launches": 1118, "graph_launches": 61, "launches_per_step": 18.4},
                        {"graphs": False, "error": "RuntimeError: profiler"}]}
    md = gpu.render_markdown(res)
    assert "| reg_fried, label noise 10%, seed 0 | 0.9900 | 0.01 | 0.950 | 101 / 99 | 0.630 / 0.610 |" in md
    assert "| 1000 | 30 | 1.10 (1.00, 1.20) | 0.85 | 1.30 | 1.100 | 42 | 5.50 | 0.07 / 0.56 |" in md
    assert "| 100000 | 30 | 13.00 (13.00) | 11.00 | 1.18 | 0.130 | 200 | – | – |" in md  # graphs only above --eager-max
    assert "replayed from a CUDA graph: one fit, 1000 rows, 2 epochs (64 steps of batch 32): 17 host syncs" in md
    assert "1118 kernel launches and 61 graph launches (18.4 per step)" in md
    assert "- profile failed: RuntimeError: profiler" in md


def test_the_mixture_iterations_harness_runs_and_matches_the_default_mixture(tmp_path: Path) -> None:
    # benchmarks.mixture_iterations is not part of `make bench`: this keeps it from rotting. At the default cap (100)
    # its F1 is the suite's loss_mixture figure for the same fit.
    from benchmarks import mixture_iterations
    from benchmarks.run import _cell_data, detection_scores
    from lossval import LossVal

    out = tmp_path / "m.json"
    mixture_iterations.main(["--only", "reg_diabetes", "--noise", "label", "--seeds", "1", "--caps", "10,100",
                             "--out", str(out)])
    [rec] = json.loads(out.read_text())["records"]
    data = _cell_data("reg_diabetes", "label", 0.1, 0)
    lv = LossVal(task="regression", verbose=False, seed=0, device="cpu").fit(data["X"], data["y"],
                                                                             *data["valid"]["clean"])
    assert rec["f1_100"] == detection_scores(1.0 - lv.noise_probability(), data["noisy"], 0.1)["f1_2means"]
    assert set(rec) >= {"f1_10", "n_iter_10", "converged_100", "flagged_p50_100"}


def test_the_diameter_harness_times_both_paths_and_compares_their_numbers(tmp_path: Path, monkeypatch) -> None:
    # benchmarks.diameter is not part of `make bench` (100,000 x 20,000 rows take minutes): this keeps it from
    # rotting. With the threshold lowered, small rows take the pruned path and must give the every-pair number.
    from benchmarks import diameter
    from lossval import valuation

    monkeypatch.setattr(valuation, "_DISTANCE_PRUNE_PAIRS", 10_000)
    diameter.main(["--rows", "600", "--valid", "100", "--cases", "regression:3,gaussian:4", "--out-dir", str(tmp_path)])
    records = json.loads((tmp_path / "diameter.json").read_text())["records"]
    assert [(r["case"], r["columns"], r["pruning_tried"], r["equal"]) for r in records] == [
        ("regression:3", 4, True, True), ("gaussian:4", 4, True, True)]
    md = (tmp_path / "diameter.md").read_text()
    assert "| regression:3 | 600 x 100 | 4 |" in md and "Pruning starts at 10,000 pairs" in md
    monkeypatch.setattr(valuation, "_max_distance", lambda Z, Z_val: Z.new_tensor(-1.0))
    with pytest.raises(SystemExit, match="differs from every pair"):  # a mismatch cannot pass silently
        diameter.main(["--rows", "600", "--valid", "100", "--cases", "gaussian:4", "--out-dir", str(tmp_path)])
