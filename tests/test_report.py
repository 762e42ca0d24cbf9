"""experiments.report: tables, CSVs and figures from sweep directories (hand-made runs, no search)."""

from __future__ import annotations

import csv
import json

import matplotlib.image as mpimg
import numpy as np
import pytest

from experiments import report
from tests.test_analysis import OPT, fake_run


def two_parameter_sweep(root):
    """lanas over tree_height x Cp, 2 seeds; height 1 never reaches the optimum (censored)."""
    for h in (1, 2, 4):
        for cp in (0.0, 0.1):
            for seed in (0, 1):
                n = 5 + h + seed if h > 1 else 20  # height 1 stops at the budget, 20
                rewards = [0.5 + 0.01 * i for i in range(n)]
                if h > 1:
                    rewards[-1] = OPT
                fake_run(root, f"h={h},cp={cp},s={seed}", rewards, seed=seed, budget=20,
                         reached_at=n if h > 1 else None, params={"tree_height": h, "Cp": cp},
                         overrides=[f"searcher.tree_height={h}", f"searcher.Cp={cp}", f"seed={seed}"])
    return root


def read_csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_report_writes_tables_and_readable_figures(tmp_path, capsys):
    sweep = two_parameter_sweep(tmp_path / "sweep")
    out = tmp_path / "report"
    assert report.main([str(sweep), "--out", str(out), "--budgets", "3,8"]) == 0
    printed = capsys.readouterr().out
    assert "12 finished runs" in printed and "grouped by searcher.Cp, searcher.tree_height" in printed
    rows = read_csv(out / "table.csv")
    assert len(rows) == 6 and all(r["runs"] == "2" for r in rows)
    by_cell = {(float(r["searcher.Cp"]), int(r["searcher.tree_height"])): r for r in rows}
    censored = by_cell[(0.0, 1)]
    assert censored["censored"] == "2" and censored["median"] == "nan"
    reached = by_cell[(0.1, 4)]
    assert reached["censored"] == "0" and float(reached["mean"]) == pytest.approx(np.mean([9, 10]))
    assert float(reached["best@3"]) == pytest.approx(0.52) and float(reached["best@8"]) == pytest.approx(0.57)
    assert float(by_cell[(0.1, 2)]["best@8"]) == pytest.approx(OPT)  # held after the optimum (found at 7)
    assert len(read_csv(out / "runs.csv")) == 12
    md = (out / "table.md").read_text()
    assert ">= 20.0" in md and "> 20" in md  # censored mean is a lower bound; median undefined beyond 20
    assert md.count("\n| ") >= 7 and "heatmap_searcher.Cp__searcher.tree_height.png" in md
    for name in ("best_so_far.png", "regret.png", "samples_to_optimum.png",
                 "heatmap_searcher.Cp__searcher.tree_height.png"):
        image = mpimg.imread(out / name)
        assert image.shape[0] > 200 and image.shape[1] > 200 and image.std() > 0.01, name


def test_one_parameter_sweep_plots_the_metric_against_it_and_adds_no_heatmap(tmp_path):
    sweep = tmp_path / "sweep"
    for cp in (0.0, 0.01, 0.1, 1.0):
        fake_run(sweep, f"cp={cp}", [0.5, OPT], reached_at=2, params={"Cp": cp}, overrides=[f"searcher.Cp={cp}"])
        fake_run(sweep, f"cp={cp}b", [0.5, 0.6, OPT], seed=1, reached_at=3, params={"Cp": cp},
                 overrides=[f"searcher.Cp={cp}"])
    result = report.make_report([sweep], tmp_path / "out", budgets=(1,))
    assert result["keys"] == ["searcher.Cp"]
    assert [r["mean"] for r in result["rows"]] == [2.5] * 4
    assert not list((tmp_path / "out").glob("heatmap_*"))
    assert mpimg.imread(tmp_path / "out" / "samples_to_optimum.png").std() > 0.01


def test_searchers_side_by_side_and_missing_directory(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    for seed in range(3):
        fake_run(sweep, f"lanas{seed}", [0.5, OPT], seed=seed, reached_at=2)
        fake_run(sweep, f"random{seed}", [0.5, 0.6, 0.7, OPT], searcher="random", seed=seed, reached_at=4)
    result = report.make_report([sweep], tmp_path / "out", budgets=(2,))
    assert result["keys"] == ["searcher"]
    assert [(r["searcher"], r["mean"], r["censored"]) for r in result["rows"]] == [("lanas", 2.0, 0), ("random", 4.0, 0)]
    assert [r["best@2"] for r in result["rows"]] == pytest.approx([OPT, 0.6])
    assert report.main([str(tmp_path / "missing")]) == 2
    assert "no such run or sweep directory" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty")]) == 2
    assert capsys.readouterr().err.startswith("error: no finished runs")


def test_random_reference_comes_from_the_summaries_and_old_runs_get_a_note(tmp_path):
    for seed in range(2):
        fake_run(tmp_path / "old", f"r{seed}", [0.5, OPT], seed=seed, reached_at=2)
    result = report.make_report([tmp_path / "old"], tmp_path / "out_old", budgets=(1,))
    assert not [r for r in result["references"] if r["searcher"] == "random"]
    assert any("toy/d" in note and "no pool_size" in note for note in result["notes"])
    for path in (tmp_path / "old").glob("*/summary.json"):
        path.write_text(json.dumps({**json.loads(path.read_text()), "pool_size": 99, "num_optima": 1}))
    result = report.make_report([tmp_path / "old"], tmp_path / "out_new", budgets=(1,))
    assert [r["mean"] for r in result["references"] if r["searcher"] == "random"] == [50.0]
    assert not any("pool_size" in note for note in result["notes"])
