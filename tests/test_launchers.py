"""Presets with the documented launchers: joblib (the cores of one machine) and submitit (SLURM; tested
with submitit_local, which runs the same code path as submitit_slurm without a cluster)."""

from __future__ import annotations

import json

import pytest

from tests.test_run import run_py


# joblib is marked slow only for time (about 15 s of worker start-up on a busy 2-core machine).
@pytest.mark.parametrize("launcher", [
    pytest.param(("hydra/launcher=joblib", "hydra.launcher.n_jobs=2"), marks=pytest.mark.slow),
    ("hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5"),
])
def test_preset_sweep_runs_under_each_launcher_into_the_same_job_dirs(tmp_path, launcher):
    result = run_py("-m", "experiment=rq3_tree_height", "scale=smoke", "searcher.tree_height=1,3",
                    *launcher, f"hydra.sweep.dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-2000:]
    names = sorted(p.parent.name for p in tmp_path.glob("*/summary.json"))
    # The launcher changes where a job runs, not where its results go: a sweep can move between them.
    assert names == [f"searcher.tree_height={h},seed={s}" for h in (1, 3) for s in (0, 1)]
    for name in names:
        summary = json.loads((tmp_path / name / "summary.json").read_text())
        assert summary["searcher_params"]["tree_height"] == int(name.split("=")[1].split(",")[0])
        assert summary["num_samples"] <= 100
