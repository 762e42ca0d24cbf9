"""wandb: runs grouped by experiment and searcher and tagged with their swept values; the report
helper logs the table offline and skips the online-only wandb Report."""

from __future__ import annotations

import wandb

from experiments import wandb_report
from lanas.logging import WandbLogger
from tests.test_analysis import OPT, fake_run


def test_runs_are_grouped_by_experiment_and_searcher_and_tagged_with_swept_values(tmp_path, monkeypatch):
    run_dir = fake_run(tmp_path, "job", [0.5, OPT], reached_at=2,
                       overrides=["searcher.Cp=0.1", "seed=3", "experiment=rq3_cp", "logger=wandb", "scale=smoke"])
    config = {"experiment_name": "rq3_cp", "searcher": {"name": "lanas", "Cp": 0.1}}
    group, job_type, tags = WandbLogger.run_labels(config, run_dir, "nasbench201-cifar10", ["lanas"])
    assert (group, job_type) == ("rq3_cp", "lanas")
    assert tags == ["lanas", "rq3_cp", "searcher.Cp=0.1"]  # seed, logger, scale are not parameters
    # Without a preset the caller's group stands and there are no sweep tags.
    assert WandbLogger.run_labels({"searcher": {"name": "lanas"}}, tmp_path, "g", None) == ("g", "lanas", [])

    calls = {}

    class FakeRun:
        summary: dict = {}

        def define_metric(self, *args, **kwargs):
            calls.setdefault("metrics", []).append((args, kwargs))

    monkeypatch.setattr(wandb, "init", lambda **kwargs: calls.update(kwargs) or FakeRun())
    WandbLogger(mode="offline").start(config, run_dir, "name", group="nasbench201-cifar10", tags=["lanas"])
    assert calls["group"] == "rq3_cp" and calls["job_type"] == "lanas" and "searcher.Cp=0.1" in calls["tags"]
    assert ((("*",), {"step_metric": "samples"})) in calls["metrics"], "metrics are logged against samples"


def test_wandb_report_logs_the_table_offline_and_skips_the_online_report(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    for seed in range(2):
        fake_run(tmp_path / "rq_x", f"s{seed}", [0.5, OPT], seed=seed, reached_at=2)
    assert wandb_report.main([str(tmp_path / "rq_x"), "--out", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    assert "wandb report skipped: offline" in printed
    runs = list((tmp_path / "rep" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and list(runs[0].glob("*.wandb"))
    columns, data = wandb_report.table_rows([{"a": 1, "b": float("nan")}, {"a": 2, "c": "x"}])
    assert columns == ["a", "b", "c"] and data == [[1, None, None], [2, None, "x"]]
