"""Checkpoint and resume: a run killed at any moment and resumed leaves the trace of an uninterrupted run.

The searchers are the ones in conf/searcher/*.yaml, so searchers added later are covered as well.
Crashes are simulated in-process first (deterministic points, fast), then with real SIGKILLs of
``run.py`` at random moments, and clean stops with SIGINT/SIGTERM.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import lanas.checkpoint as checkpoint_module
from lanas.app import run
from lanas.benchmarks.hpo import FCNetBenchmark
from lanas.benchmarks.nasbench201 import NASBench201Benchmark
from lanas.rundir import CHECKPOINT
from lanas.errors import ConfigError
from lanas.runner import RunInterrupted
from lanas.config import compose_config

ROOT = Path(__file__).resolve().parents[1]
SEARCHERS = sorted(path.stem for path in (ROOT / "conf" / "searcher").glob("*.yaml"))
# Overrides that keep a searcher's 300-sample run quick (add one here if a new searcher is slow).
# gp: GPSampler fits a GP per trial after its random start; 30 random ones leave 70 of the 100 in-process samples
# (crashes and resumes among them, so its kernel cache is restored from checkpoints) to the GP.
FAST: dict[str, list[str]] = {"gp": ["searcher.n_startup_trials=30", "searcher.max_repeats=2"]}
BUDGET = 300  # the SIGKILL tests; the in-process ones stop at IN_PROCESS_BUDGET (crash points are below it)
IN_PROCESS_BUDGET = 100
# sampled rewards: the evaluation generator must be restored too, not only the searcher's.
COMMON = ["stop_at_optimum=false", "benchmark.reward=sampled", "trace_timing=false", "seed=5"]
# Fields of summary.json that legitimately differ between an interrupted and an uninterrupted run.
TIMING_FIELDS = {"wall_time_s", "resumes"}


def overrides(searcher: str, *extra: str, budget: int = BUDGET) -> list[str]:
    return [f"searcher={searcher}", f"budget={budget}", *COMMON, *FAST.get(searcher, []), *extra]


def summary_without_timing(out: Path) -> dict:
    summary = json.loads((out / "summary.json").read_text())
    return {k: v for k, v in summary.items() if k not in TIMING_FIELDS}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """``reference(searcher, budget)``: the directory of an uninterrupted run (default checkpoint_every), made once."""
    outs: dict[tuple[str, int], Path] = {}

    def get(searcher: str, budget: int = BUDGET) -> Path:
        if (searcher, budget) not in outs:
            out = tmp_path_factory.mktemp(f"ref-{searcher}-{budget}")
            run(compose_config(*overrides(searcher, budget=budget)), out)
            outs[searcher, budget] = out
        return outs[searcher, budget]

    return get


class _Crash(BaseException):
    """Stands for SIGKILL: not an Exception, so no handler in the code under test catches it."""


def crash_at(monkeypatch: pytest.MonkeyPatch, calls: int, benchmark: type = NASBench201Benchmark) -> None:
    """Make the ``calls``-th benchmark query of this process die."""
    original = benchmark.query
    count = {"n": 0}

    def query(self, archs, rng):
        count["n"] += 1
        if count["n"] == calls:
            raise _Crash
        return original(self, archs, rng)

    monkeypatch.setattr(benchmark, "query", query)


@pytest.mark.parametrize("searcher", SEARCHERS)
def test_in_process_crashes_resume_to_the_uninterrupted_trace(searcher, reference, tmp_path, monkeypatch):
    # Crash points around checkpoints (every 7 samples): just before, at and after one, twice in a row.
    budget = IN_PROCESS_BUDGET
    for calls, every in ((1, 7), (8, 7), (7, 7), (15, 7), (40, 1), (2, 50)):
        with monkeypatch.context() as patch:
            crash_at(patch, calls)
            with pytest.raises(_Crash):
                run(compose_config(*overrides(searcher, f"checkpoint_every={every}", budget=budget)), tmp_path)
    run(compose_config(*overrides(searcher, "checkpoint_every=7", budget=budget)), tmp_path)
    assert (tmp_path / "trace.csv").read_bytes() == (reference(searcher, budget) / "trace.csv").read_bytes()
    assert summary_without_timing(tmp_path) == summary_without_timing(reference(searcher, budget))
    assert json.loads((tmp_path / "summary.json").read_text())["resumes"] >= 1


def test_lanas_plus_resumes_under_the_encoding_it_chose(tmp_path, monkeypatch):
    # FCNet parkinsons: the model's evidence moves lanas_plus to the one-hot encoding after 50-90 samples. Crashes
    # before and after that resume to the uninterrupted trace (the choice and both models are in the checkpoint;
    # the encodings' feature matrices are not).
    fcnet = ["searcher=lanas_plus", "benchmark=fcnet", "dataset=parkinsons", "budget=120", "stop_at_optimum=false",
             "trace_timing=false", "seed=1"]
    reference = tmp_path / "reference"
    run(compose_config(*fcnet), reference)
    assert json.loads((reference / "summary.json").read_text())["searcher_stats"]["alternative_encoding_refits"] > 0
    out = tmp_path / "resumed"
    for calls in (50, 60):  # queries of each process: the second resumes at sample 45 and dies at 105
        with monkeypatch.context() as patch:
            crash_at(patch, calls, FCNetBenchmark)
            with pytest.raises(_Crash):
                run(compose_config(*fcnet, "checkpoint_every=9"), out)
    assert (out / CHECKPOINT).stat().st_size < 8_000_000  # the one-hot feature matrix alone is 8.5 MB: not in it
    run(compose_config(*fcnet, "checkpoint_every=9"), out)
    assert (out / "trace.csv").read_bytes() == (reference / "trace.csv").read_bytes()
    assert summary_without_timing(out) == summary_without_timing(reference)


def test_a_warm_started_run_resumes_to_the_uninterrupted_trace(tmp_path, monkeypatch):
    # The earlier run's samples are read again at the resume; the model's prior comes from the checkpoint.
    earlier = tmp_path / "earlier"
    run(compose_config("searcher=lanas_plus", "dataset=cifar100", "budget=60", "stop_at_optimum=false",
                       "trace_timing=false", "seed=2"), earlier)
    warm = ["searcher=lanas_plus", f"warm_start={earlier}", "budget=80", "stop_at_optimum=false",
            "trace_timing=false", "seed=3"]
    reference = tmp_path / "reference"
    run(compose_config(*warm), reference)
    assert "warm_start_weight" in json.loads((reference / "summary.json").read_text())["searcher_stats"]
    out = tmp_path / "resumed"
    for calls in (25, 30):
        with monkeypatch.context() as patch:
            crash_at(patch, calls)
            with pytest.raises(_Crash):
                run(compose_config(*warm, "checkpoint_every=9"), out)
    run(compose_config(*warm, "checkpoint_every=9"), out)
    assert (out / "trace.csv").read_bytes() == (reference / "trace.csv").read_bytes()
    assert summary_without_timing(out) == summary_without_timing(reference)


def test_crash_inside_a_checkpoint_write_keeps_the_previous_one(reference, tmp_path, monkeypatch):
    original = os.replace
    count = {"n": 0}

    def replace(src, dst):
        if str(dst).endswith(CHECKPOINT):
            count["n"] += 1
            if count["n"] == 3:  # the third checkpoint dies after its temporary file was written
                raise _Crash
        return original(src, dst)

    monkeypatch.setattr(checkpoint_module.os, "replace", replace)
    with pytest.raises(_Crash):
        run(compose_config(*overrides("lanas", "checkpoint_every=10", budget=IN_PROCESS_BUDGET)), tmp_path)
    monkeypatch.undo()
    header = checkpoint_module.Checkpointer(tmp_path, 1, {}, {}).read_header()
    assert header["num_samples"] == 20
    run(compose_config(*overrides("lanas", budget=IN_PROCESS_BUDGET)), tmp_path)
    expected = reference("lanas", IN_PROCESS_BUDGET) / "trace.csv"
    assert (tmp_path / "trace.csv").read_bytes() == expected.read_bytes()


def test_a_complete_run_is_not_redone(tmp_path):
    cfg = compose_config("budget=30", "stop_at_optimum=false")
    first = run(cfg, tmp_path)
    stamp = (tmp_path / "trace.csv").stat().st_mtime_ns
    again = run(cfg, tmp_path)
    assert again == json.loads((tmp_path / "summary.json").read_text()) == first
    assert (tmp_path / "trace.csv").stat().st_mtime_ns == stamp


def test_timed_trace_equals_apart_from_elapsed(tmp_path, monkeypatch):
    # The default trace has elapsed_s: everything else must still match after a resume.
    args = ("budget=60", "stop_at_optimum=false", "checkpoint_every=9")
    run(compose_config(*args), tmp_path / "ref")
    with monkeypatch.context() as patch:
        crash_at(patch, 25)
        with pytest.raises(_Crash):
            run(compose_config(*args), tmp_path / "res")
    run(compose_config(*args), tmp_path / "res")

    def rows(out):
        lines = (out / "trace.csv").read_text().splitlines()
        assert lines[0].endswith(",elapsed_s")
        return [line.rsplit(",", 1)[0] for line in lines]

    assert rows(tmp_path / "res") == rows(tmp_path / "ref")


def test_signal_in_process_stops_cleanly_with_checkpoint_and_partial_summary(tmp_path, monkeypatch):
    original = NASBench201Benchmark.query
    count = {"n": 0}

    def query(self, archs, rng):
        count["n"] += 1
        if count["n"] == 33:
            os.kill(os.getpid(), signal.SIGTERM)  # delivered to the loop's handler
        return original(self, archs, rng)

    monkeypatch.setattr(NASBench201Benchmark, "query", query)
    cfg = compose_config("budget=80", "stop_at_optimum=false", "trace_timing=false")
    with pytest.raises(RunInterrupted) as info:
        run(cfg, tmp_path / "res")
    assert info.value.exit_code == 128 + signal.SIGTERM
    summary = json.loads((tmp_path / "res" / "summary.json").read_text())
    assert summary["complete"] is False and summary["num_samples"] == 33
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers are put back
    monkeypatch.undo()
    assert run(cfg, tmp_path / "res")["complete"] is True
    run(cfg, tmp_path / "ref")
    assert (tmp_path / "res" / "trace.csv").read_bytes() == (tmp_path / "ref" / "trace.csv").read_bytes()


# ---------------------------------------------------------------------------------------------- real processes
def _env() -> dict[str, str]:
    return {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "0"}


def _rows(path: Path) -> int:
    try:
        return max(path.read_bytes().count(b"\n") - 1, 0)
    except FileNotFoundError:
        return 0


def _start(out: Path, args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), f"hydra.run.dir={out}", "logger=none", "progress=false", *args],
        cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _wait_for_rows(proc: subprocess.Popen, trace: Path, rows: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while _rows(trace) < rows and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)


def kill_and_resume(out: Path, args: list[str], kill_rows: list[int], everies: list[int]) -> list[int]:
    """SIGKILL ``run.py`` once its trace has each of ``kill_rows`` rows, resume, finish; rows seen at each kill."""
    seen = []
    for rows, every in zip(kill_rows, everies):
        proc = _start(out, [*args, f"checkpoint_every={every}"])
        _wait_for_rows(proc, out / "trace.csv", rows)
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        seen.append(_rows(out / "trace.csv"))
    proc = _start(out, args)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    assert stdout.count("\n") == 1
    return seen


def _kill_points(rng: random.Random, count: int) -> list[int]:
    # Increasing, so each kill lands after the resumed process has written new rows.
    return sorted(rng.sample(range(2, BUDGET - 20), count))


# The default run SIGKILLs LaNAS; every other searcher is SIGKILLed in the slow run (in-process crashes
# above cover every searcher by default).
@pytest.mark.parametrize(
    "searcher", [s if s == "lanas" else pytest.param(s, marks=pytest.mark.slow) for s in SEARCHERS]
)
def test_sigkill_at_random_points_then_resume_gives_the_same_trace(searcher, reference, tmp_path):
    rng = random.Random(f"fast-{searcher}")
    seen = kill_and_resume(tmp_path, overrides(searcher), _kill_points(rng, 3), everies=[1, 5, 17])
    assert any(0 < rows < BUDGET for rows in seen), f"no kill landed inside the run: {seen}"
    assert (tmp_path / "trace.csv").read_bytes() == (reference(searcher) / "trace.csv").read_bytes()
    assert summary_without_timing(tmp_path) == summary_without_timing(reference(searcher))


@pytest.mark.slow
@pytest.mark.parametrize("searcher", SEARCHERS)
@pytest.mark.parametrize("trial", range(3))
def test_many_sigkills_then_resume_gives_the_same_trace(searcher, trial, reference, tmp_path):
    rng = random.Random(f"slow-{searcher}-{trial}")
    kills = _kill_points(rng, 8)
    seen = kill_and_resume(tmp_path, overrides(searcher), kills, everies=[rng.choice([1, 2, 7, 50]) for _ in kills])
    assert sum(0 < rows < BUDGET for rows in seen) >= 4, f"too few kills landed inside the run: {seen}"
    assert (tmp_path / "trace.csv").read_bytes() == (reference(searcher) / "trace.csv").read_bytes()
    assert summary_without_timing(tmp_path) == summary_without_timing(reference(searcher))


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_and_sigterm_stop_cleanly(sig, code, reference, tmp_path):
    searcher = "lanas"
    proc = _start(tmp_path, overrides(searcher, "checkpoint_every=1000"))
    _wait_for_rows(proc, tmp_path / "trace.csv", 40)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert stderr.strip().startswith("interrupted: stopped by") and f"resume={tmp_path}" in stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["complete"] is False and 40 <= summary["num_samples"] < BUDGET
    header = checkpoint_module.Checkpointer(tmp_path, 1, {}, {}).read_header()
    assert header["num_samples"] == summary["num_samples"]  # saved at the stop, not only every 1000
    assert _rows(tmp_path / "trace.csv") == summary["num_samples"]
    assert not list(tmp_path.glob(".*.tmp"))
    result = subprocess.run([sys.executable, str(ROOT / "run.py"), f"resume={tmp_path}", "logger=none",
                             "progress=false", *overrides(searcher)], cwd=ROOT, env=_env(),
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "trace.csv").read_bytes() == (reference(searcher) / "trace.csv").read_bytes()


def test_metrics_csv_after_a_resume_equals_the_uninterrupted_one(tmp_path, monkeypatch):
    args = ("budget=50", "stop_at_optimum=false", "checkpoint_every=8", "logger=csv")
    run(compose_config(*args), tmp_path / "ref")
    with monkeypatch.context() as patch:
        crash_at(patch, 30)
        with pytest.raises(_Crash):
            run(compose_config(*args), tmp_path / "res")
    run(compose_config(*args), tmp_path / "res")
    assert (tmp_path / "res" / "metrics.csv").read_bytes() == (tmp_path / "ref" / "metrics.csv").read_bytes()


def test_resume_ignore_lets_listed_keys_change(tmp_path, monkeypatch):
    base = ("budget=40", "stop_at_optimum=false", "checkpoint_every=5", "trace_timing=false")
    with monkeypatch.context() as patch:
        crash_at(patch, 12)
        with pytest.raises(_Crash):
            run(compose_config(*base, "+n_seeds=3"), tmp_path)
    with pytest.raises(ConfigError, match="n_seeds: 3 -> 10"):
        run(compose_config(*base, "+n_seeds=10"), tmp_path)
    summary = run(compose_config(*base, "+n_seeds=10", "resume_ignore=[n_seeds]"), tmp_path)
    assert summary["complete"] and summary["resumes"] == 1


def test_an_interrupted_sweep_started_again_skips_finished_jobs(tmp_path):
    args = [sys.executable, str(ROOT / "run.py"), "-m", "seed=0,1", "budget=30", "stop_at_optimum=false",
            "logger=none", "progress=false", f"hydra.sweep.dir={tmp_path}"]
    first = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert first.returncode == 0, first.stderr
    stamps = {job: (tmp_path / job / "trace.csv").stat().st_mtime_ns for job in ("0", "1")}
    (tmp_path / "1" / "summary.json").unlink()  # job 1 "was killed" after its last checkpoint
    again = subprocess.run(args, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert sum(line.startswith("lanas on ") for line in again.stdout.splitlines()) == 2
    assert (tmp_path / "0" / "trace.csv").stat().st_mtime_ns == stamps["0"]  # finished: not redone
    assert json.loads((tmp_path / "1" / "summary.json").read_text())["complete"] is True


class _CountingBenchmark(NASBench201Benchmark):
    """An evaluator with state of its own (queries answered), saved through state_dict/load_state_dict."""

    def __init__(self, dataset: str = "cifar10", reward: str = "mean") -> None:
        super().__init__(dataset, reward)
        self.queries = 0

    def query(self, archs, rng):
        self.queries += len(archs)
        return super().query(archs, rng)

    def state_dict(self) -> dict:
        return {"queries": self.queries}

    def load_state_dict(self, state: dict) -> None:
        self.queries = state["queries"]


def test_evaluator_state_is_checkpointed_when_it_has_state_dict(tmp_path, monkeypatch):
    cfg = compose_config("budget=40", "stop_at_optimum=false", "checkpoint_every=10")
    cfg.benchmark._target_ = f"{__name__}._CountingBenchmark"
    with monkeypatch.context() as patch:
        crash_at(patch, 25)
        with pytest.raises(_Crash):
            run(cfg, tmp_path)
    _, saved = checkpoint_module.Checkpointer(tmp_path, 1, {}, {"space": None, "evaluator": None}).load()
    assert saved["evaluator_state"] == {"queries": 20}
