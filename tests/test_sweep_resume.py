"""An interrupted experiment sweep, started again, finishes without repeating the jobs that finished.

The presets put every job in a fixed directory named by its overrides (conf/experiment/_sweep.yaml);
skipping a job whose summary.json is complete is run.py's part (branch `resume`). Until both are
merged this test fails, on purpose: it is the acceptance test of issue #5's "interrupted sweep".
"""

from __future__ import annotations

import json
import shutil

from tests.test_run import run_py

SWEEP = ("-m", "experiment=rq3_cp", "scale=smoke", "searcher.Cp=0,0.01,0.1")


def test_restarted_sweep_redoes_only_the_unfinished_jobs(tmp_path):
    sweep = tmp_path / "sweep"
    first = run_py(*SWEEP, f"hydra.sweep.dir={sweep}")
    assert first.returncode == 0, first.stderr[-2000:]
    jobs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    assert len(jobs) == 6

    # Three ways a sweep is left unfinished: a job never started (no directory), a job killed before its
    # first checkpoint (partial trace, no summary), a job killed after its last sample (no summary).
    never, early, late = jobs[0], jobs[2], jobs[4]
    shutil.rmtree(never)
    (early / "summary.json").unlink()
    (early / "checkpoint.pkl").unlink(missing_ok=True)
    lines = (early / "trace.csv").read_text().splitlines(keepends=True)
    (early / "trace.csv").write_text("".join(lines[: max(2, len(lines) // 2)]))
    (late / "summary.json").unlink()
    finished = [job for job in jobs if job not in (never, early, late)]
    before = {job: ((job / "trace.csv").stat().st_mtime_ns, (job / "summary.json").read_text()) for job in finished}

    again = run_py(*SWEEP, f"hydra.sweep.dir={sweep}")
    assert again.returncode == 0, again.stderr[-2000:]
    for job, (mtime, summary) in before.items():
        assert (job / "trace.csv").stat().st_mtime_ns == mtime, f"{job.name} was run again"
        assert (job / "summary.json").read_text() == summary, f"{job.name} was run again"
    for job in (never, early, late):
        redone = json.loads((job / "summary.json").read_text())
        assert redone["complete"] is True
        assert len((job / "trace.csv").read_text().splitlines()) == redone["num_samples"] + 1
    assert sorted(p.parent for p in sweep.glob("*/summary.json")) == jobs
