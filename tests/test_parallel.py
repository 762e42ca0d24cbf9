"""Asynchronous parallel evaluation (issue 15): engines, the loop with workers, pending-aware searchers,
crash safety with evaluations in flight, and the one-line refusals of bad input."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from lanas.app import prepare, prepare_engine, run
from lanas.checkpoint import LoopState
from lanas.config import build_searcher, compose_config
from lanas.engines.durations import ConstantSeconds, TableSeconds, nasbench201_train_time
from lanas.engines.local import LocalEngine
from lanas.engines.choose import make_engine
from lanas.engines.simulated import SimulatedEngine
from lanas.errors import ConfigError
from lanas.evaluators.base import Evaluator
from lanas.loop import search
from lanas.rundir import TRACE
from lanas.searchers.base import Searcher
from lanas.spaces.base import Arch
from lanas.spaces.nasbench201 import NASBench201Space
from tests.test_resume import _Crash, crash_at, kill_and_resume
from tests.test_run import run_py

SEARCHERS = ("lanas", "lanas_plus", "evolution", "bo", "mcts", "random", "tpe")
FOUR = ("sample", "arch", "reward", "best_reward")


def read_trace(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


class Rewards(Evaluator):
    """Reward = position / 100; position 7 is the one optimum."""

    def query(self, archs: Sequence[Arch], rng: np.random.Generator) -> np.ndarray:
        return np.asarray(archs, dtype=np.float64) / 100

    def is_optimal(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.asarray(archs) == 7


class Recording(Searcher):
    """Proposes a fixed list in order and records, at every ask, what was pending."""

    def __init__(self, space, archs: list[int]) -> None:
        super().__init__(space, np.random.default_rng(0))
        self.todo = list(archs)
        self.pending_at_ask: list[set[int]] = []
        self.asked: list[int] = []

    def ask(self, n: int = 1) -> list[Arch]:
        self.pending_at_ask.append(set(self.asked) - set(self.archs))
        out, self.todo = self.todo[:n], self.todo[n:]
        self.asked += out
        return out


@pytest.fixture(scope="module")
def space() -> NASBench201Space:
    return NASBench201Space()


# ------------------------------------------------------------------------------------------ engines
def test_simulated_engine_finishes_in_time_order_ties_by_submission_lowest_free_worker():
    engine = SimulatedEngine(3, TableSeconds(np.array([5.0, 1.0, 5.0, 2.0, 9.0])))
    rng = np.random.default_rng(0)
    for arch in (0, 1, 2):
        engine.submit(arch, Rewards(), rng)
    assert engine.num_pending == 3 and engine.num_free == 0
    first = engine.next_finished()
    assert (first.arch, first.worker, first.started_s, first.finished_s) == (1, 1, 0.0, 1.0)
    engine.submit(3, Rewards(), rng)  # takes the freed worker 1 at t=1, finishes at 3
    order = [engine.next_finished() for _ in range(3)]
    # arch 3 at 3 s, then the tie at 5 s in submission order (0 before 2)
    assert [(f.arch, f.worker, f.started_s, f.finished_s) for f in order] == [
        (3, 1, 1.0, 3.0), (0, 0, 0.0, 5.0), (2, 2, 0.0, 5.0)]
    assert order[1].reward == 0.0 and engine.num_pending == 0 and engine.now == 5.0


def test_simulated_engine_state_round_trips_with_evaluations_in_flight():
    def fresh() -> SimulatedEngine:
        return SimulatedEngine(4, TableSeconds(np.arange(1.0, 30.0)))

    engine, rng = fresh(), np.random.default_rng(0)
    for arch in (5, 3, 9, 3 + 4):
        engine.submit(arch, Rewards(), rng)
    engine.next_finished()
    copy = fresh()
    copy.load_state_dict(json.loads(json.dumps(engine.state_dict())), Rewards())  # plain data only
    assert [engine.next_finished() for _ in range(3)] == [copy.next_finished() for _ in range(3)]


def test_nasbench201_train_times_are_the_package_records():
    seconds = nasbench201_train_time("cifar10")
    assert seconds.shape == (15_625,) and np.all(seconds > 0)
    assert ConstantSeconds(12.5)([1, 2]).tolist() == [12.5, 12.5]


def test_recorded_times_follow_the_constraints():
    # Under a budget the candidate space holds the kept cells only: position i is the i-th kept cell,
    # and its simulated duration must be that cell's recorded time, not the time of full-pool cell i.
    from lanas.app import prepare
    from lanas.config import compose_config
    from lanas.engines.durations import recorded_seconds

    space, evaluator, *_ = prepare(compose_config("logger=none", "workers=4", "constraints.params_mb=0.344346"))
    seconds = recorded_seconds(evaluator)
    assert seconds.shape == (len(space),) and len(space) < 15_625
    assert np.array_equal(seconds, nasbench201_train_time("cifar10")[evaluator.kept])


# ------------------------------------------------------------------------------------------ the loop
def test_loop_keeps_n_in_flight_and_tells_in_completion_order(space):
    archs = [10, 20, 30, 40, 50, 60]
    searcher = Recording(space, archs)
    engine = SimulatedEngine(2, TableSeconds(np.array([float(a % 7 + 1) for a in range(100)])))
    records = list(search(space, Rewards(), searcher, np.random.default_rng(0), 6, False, LoopState(), engine))
    # durations: 10->4, 20->7, 30->3, 40->6, 50->2, 60->5
    # completion order; 20 and 30 both finish at 7 s: submission order breaks the tie
    assert [r.arch for r in records] == [10, 20, 30, 50, 40, 60]
    assert [(r.started_s, r.finished_s) for r in records] == [(0, 4), (0, 7), (4, 7), (7, 9), (7, 13), (9, 14)]
    assert [r.worker for r in records] == [0, 1, 0, 0, 1, 0]
    assert searcher.archs == [r.arch for r in records]  # told in that order
    assert [len(p) for p in searcher.pending_at_ask] == [0, 1, 1, 1, 1, 1]  # the other worker stays busy
    assert [r.best_reward for r in records] == [0.1, 0.2, 0.3, 0.5, 0.5, 0.6]


def test_loop_submits_no_more_than_the_budget_and_stops_at_the_optimum(space):
    engine = SimulatedEngine(4, ConstantSeconds(1.0))
    searcher = Recording(space, [1, 2, 3, 4, 5, 6, 7, 8])
    state = LoopState()
    records = list(search(space, Rewards(), searcher, np.random.default_rng(0), 3, False, state, engine))
    assert len(records) == 3 and searcher.asked == [1, 2, 3]  # the fourth worker stays idle
    engine = SimulatedEngine(4, TableSeconds(np.array([9.0] * 7 + [1.0] + [9.0] * 10)))
    state = LoopState()
    records = list(search(space, Rewards(), Recording(space, [1, 2, 3, 7, 8, 9]), np.random.default_rng(0), 10,
                          True, state, engine))
    assert [r.arch for r in records] == [7] and state.samples_to_optimum == 1 and state.time_to_optimum_s == 1.0


@pytest.mark.parametrize("searcher", SEARCHERS)
def test_searchers_with_workers_never_repeat_and_are_deterministic(searcher, space, tmp_path):
    cfg = ["budget=120", "stop_at_optimum=false", "trace_timing=false", "workers=8", f"searcher={searcher}"]
    run(compose_config(*cfg), tmp_path / "a")
    run(compose_config(*cfg), tmp_path / "b")
    rows = read_trace(tmp_path / "a" / TRACE)
    assert (tmp_path / "a" / TRACE).read_bytes() == (tmp_path / "b" / TRACE).read_bytes()
    assert len(rows) == 120 and len({row["arch"] for row in rows}) == 120
    assert {int(row["worker"]) for row in rows} == set(range(8))
    finished = [float(row["finished_s"]) for row in rows]
    assert finished == sorted(finished)  # rows in completion order
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["workers"] == 8 and summary["engine"] == "simulated"
    assert summary["clock_s"] == pytest.approx(max(finished), abs=1e-3)
    # Eight workers overlap: the simulated clock is well below the evaluation time summed.
    assert summary["clock_s"] < summary["eval_seconds_total"] / 4


@pytest.mark.parametrize("searcher", ["lanas_plus", "bo", "mcts"])
def test_one_simulated_worker_gives_the_sequential_trace(searcher, tmp_path):
    cfg = [f"searcher={searcher}", "budget=60", "stop_at_optimum=false", "trace_timing=false"]
    run(compose_config(*cfg), tmp_path / "seq")
    run(compose_config(*cfg, "engine=simulated"), tmp_path / "sim")
    seq, sim = read_trace(tmp_path / "seq" / TRACE), read_trace(tmp_path / "sim" / TRACE)
    assert list(seq[0]) == list(FOUR) and list(sim[0]) == [*FOUR, "worker", "started_s", "finished_s"]
    assert [[r[k] for k in FOUR] for r in seq] == [[r[k] for k in FOUR] for r in sim]
    assert {r["worker"] for r in sim} == {"0"}


# ------------------------------------------------------------------------------------------ searchers
def test_lanas_virtual_loss_spreads_pending_proposals_over_leaves(space):
    rng = np.random.default_rng(3)
    searcher = build_searcher("lanas", space, rng, "searcher.tree_height=3", "searcher.init_samples=20")
    evaluator = prepare(compose_config())[1]
    archs = searcher.ask(20)
    searcher.tell(archs, evaluator.query(archs, rng))
    pending = [searcher.ask(1)[0] for _ in range(8)]  # eight workers, nothing told back
    leaves = {searcher._leaf_of_arch[a] for a in pending}
    assert len(leaves) > 1  # the virtual loss moved later proposals off the first leaf
    assert int(searcher.tree.pending[0]) == 8
    searcher.tell(pending, evaluator.query(pending, rng))
    assert not searcher.tree.pending.any() and searcher.tree.n[0] == 28


def test_bo_fits_pending_points_at_the_worst_reward(space):
    rng = np.random.default_rng(0)
    searcher = build_searcher("bo", space, rng, "searcher.init_samples=5", "searcher.refit_every=1")
    evaluator = prepare(compose_config())[1]
    archs = searcher.ask(5)
    searcher.tell(archs, evaluator.query(archs, rng))
    first = searcher.ask(1)
    second = searcher.ask(1)  # refits with ``first`` pending
    assert first != second and list(searcher._pending) == [first[0], second[0]]
    gp = searcher.fit()
    assert gp.X_train_.shape[0] == 7 and gp.y_train_.shape[0] == 7  # 5 told + 2 lies
    searcher.tell(first + second, evaluator.query(first + second, rng))
    assert not searcher._pending


def test_mcts_counts_pending_visits_and_drops_them_when_told(space):
    rng = np.random.default_rng(0)
    searcher = build_searcher("mcts", space, rng, "searcher.init_samples=3")
    evaluator = prepare(compose_config())[1]
    archs = searcher.ask(3)
    searcher.tell(archs, evaluator.query(archs, rng))
    pending = [searcher.ask(1)[0] for _ in range(4)]
    assert searcher._pending[()] == 4 and len(set(pending)) == 4
    searcher.tell(pending, evaluator.query(pending, rng))
    assert searcher._pending == {} and searcher.n[()] == 7


# ------------------------------------------------------------------------------------------ crash safety
@pytest.mark.parametrize("searcher", ["lanas_plus", "evolution",
                                      *(pytest.param(s, marks=pytest.mark.slow) for s in ("lanas", "bo", "mcts", "random",
                                                                                       "tpe"))])
def test_crashes_with_evaluations_in_flight_resume_to_the_uninterrupted_trace(searcher, tmp_path, monkeypatch):
    cfg = [f"searcher={searcher}", "budget=80", "stop_at_optimum=false", "trace_timing=false", "workers=6",
           "benchmark.reward=sampled", "seed=3"]
    run(compose_config(*cfg), tmp_path / "ref")
    out = tmp_path / "crashed"
    for calls, every in ((9, 7), (30, 7), (31, 1), (20, 13)):
        with monkeypatch.context() as patch:
            crash_at(patch, calls)
            with pytest.raises(_Crash):
                run(compose_config(*cfg, f"checkpoint_every={every}"), out)
    run(compose_config(*cfg, "checkpoint_every=7"), out)
    assert (out / TRACE).read_bytes() == (tmp_path / "ref" / TRACE).read_bytes()
    done, ref = (json.loads((d / "summary.json").read_text()) for d in (out, tmp_path / "ref"))
    assert done["resumes"] >= 1
    for key in ("time_to_optimum_s", "eval_seconds_total", "clock_s", "best_arch", "num_samples"):
        assert done[key] == ref[key]


def test_sigkill_with_evaluations_in_flight_then_resume_gives_the_same_trace(tmp_path):
    args = ["searcher=lanas_plus", "budget=300", "stop_at_optimum=false", "trace_timing=false", "workers=16",
            "benchmark.reward=sampled", "seed=4", "logger=none", "progress=false"]
    ref = tmp_path / "ref"
    assert run_py(*args, f"hydra.run.dir={ref}").returncode == 0
    out = tmp_path / "killed"
    seen = kill_and_resume(out, [*args, f"hydra.run.dir={out}"], [40, 150, 260], everies=[1, 5, 17])
    assert any(0 < rows < 300 for rows in seen), f"no kill landed inside the run: {seen}"
    assert (out / TRACE).read_bytes() == (ref / TRACE).read_bytes()


# ------------------------------------------------------------------------------------------ local engine
def test_local_engine_runs_evaluations_at_once_in_real_time(space, tmp_path):
    summary = run(compose_config("budget=12", "stop_at_optimum=false", "workers=3", "engine=local"), tmp_path)
    rows = read_trace(tmp_path / TRACE)
    assert summary["engine"] == "local" and len(rows) == 12 and len({r["arch"] for r in rows}) == 12
    assert {int(r["worker"]) for r in rows} <= {0, 1, 2}
    assert all(float(r["finished_s"]) >= float(r["started_s"]) for r in rows)


def test_local_engine_restarts_evaluations_in_flight_with_their_seeds():
    class Seeded(Evaluator):
        def query(self, archs, rng):
            return np.array([rng.random()])

    engine, rng = LocalEngine(2), np.random.default_rng(0)
    engine.submit(1, Seeded(), rng)
    engine.submit(2, Seeded(), rng)
    state = engine.state_dict()
    results = sorted((f.arch, f.reward) for f in (engine.next_finished(), engine.next_finished()))
    engine.close()
    again = LocalEngine(2)
    again.load_state_dict(state, Seeded())
    assert sorted((f.arch, f.reward) for f in (again.next_finished(), again.next_finished())) == results
    again.close()


# ------------------------------------------------------------------------------------------ bad input
@pytest.mark.parametrize("args, key", [
    (["workers=0"], "workers"),
    (["workers=20000"], "workers=20000"),
    (["engine=threads"], "engine"),
    (["engine=none", "workers=2"], "engine=none"),
    (["experiment=oneshot_smoke", "workers=2"], "workers=2"),
    (["experiment=oneshot_smoke", "evaluator=train", "workers=2"], "evaluator.executor=none"),
])
def test_bad_parallel_settings_are_one_line_errors(args, key, tmp_path):
    result = run_py(*args, "logger=none", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], result.stderr


def test_simulated_engine_needs_recorded_times_and_train_needs_an_executor(space):
    class NoTimes(Evaluator):
        def query(self, archs, rng):
            return np.zeros(len(archs))

    with pytest.raises(ConfigError, match="engine=simulated needs .*simulated_seconds"):
        make_engine("simulated", 2, NoTimes(), space)
    assert isinstance(make_engine("simulated", 2, NoTimes(), space, simulated_seconds=60), SimulatedEngine)
    train = type("Train", (NoTimes,), {"executor": "none", "name": "train"})()
    with pytest.raises(ConfigError, match="evaluator.executor=none"):
        make_engine("auto", 2, train, space)
    with pytest.raises(ConfigError, match="workers=2: evaluator=evaluator evaluates in this process"):
        make_engine("local", 2, NoTimes(), space)
    assert make_engine("auto", 1, NoTimes(), space) is None  # one worker: the sequential loop


def test_prepare_engine_follows_the_config(space):
    cfg = compose_config("workers=4")
    _, evaluator, _, info, _ = prepare(cfg)
    assert (info.workers, info.engine) == (4, "simulated")
    assert isinstance(prepare_engine(cfg, space, evaluator), SimulatedEngine)
    assert prepare(compose_config())[3].engine == "none"


# ------------------------------------------------------------------------------------------ report
def test_report_tabulates_engine_hours_and_draws_regret_against_time(tmp_path):
    from experiments.report import make_report

    for workers in (1, 4):
        for seed in (0, 1):
            run(compose_config("searcher=lanas_plus", f"workers={workers}", "engine=simulated", f"seed={seed}",
                               "budget=400"), tmp_path / "sweep" / f"w{workers}s{seed}")
    report = make_report([tmp_path / "sweep"], tmp_path / "report", with_references=False)
    assert (tmp_path / "report" / "regret_time.png").stat().st_size > 0
    lines = (tmp_path / "report" / "time_table.md").read_text().splitlines()
    # one searcher: grouped by the worker count alone (read from summary.json, no override recorded)
    assert lines[0].startswith("| workers | runs | censored | samples: mean ± SE")
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ") for line in lines[2:]}
    assert set(rows) == {"1", "4"} and report["time_table"]
    # Four workers reach the optimum in fewer simulated hours than one.
    hours = {w: float(cells[5].split(" ± ")[0].lstrip(">= ")) for w, cells in rows.items()}
    assert hours["4"] < hours["1"]


# ------------------------------------------------------------------------------------------ slurm engine
def test_slurm_engine_reattaches_to_finished_jobs_and_reruns_lost_ones(tmp_path):
    """engine=slurm through submitit's local executor (the SLURM executor's code path without a cluster)."""
    from lanas.benchmarks.nasbench201 import NASBench201Benchmark
    from lanas.engines.cluster import ClusterEngine

    bench = NASBench201Benchmark()
    engine = ClusterEngine(2, tmp_path, cluster="local", params={"timeout_min": 5}, poll_s=0.2)
    rng = np.random.default_rng(0)
    engine.submit(11, bench, rng)
    engine.submit(12, bench, rng)
    for job, *_ in engine._running.values():
        job.wait()
    state = engine.state_dict()  # both finished while "the search was down"
    ids = {row[0] for row in state["running"]}
    submitted = set(tmp_path.glob("*_submitted.pkl"))
    again = ClusterEngine(2, tmp_path, cluster="local", poll_s=0.2)
    again.load_state_dict(json.loads(json.dumps(state)), bench)
    done = sorted((f.arch, f.reward, f.worker) for f in (again.next_finished(), again.next_finished()))
    assert done == [(11, float(bench.query([11], rng)[0]), 0), (12, float(bench.query([12], rng)[0]), 1)]
    assert set(tmp_path.glob("*_submitted.pkl")) == submitted  # read back, not trained again
    # A local job that died with the search (no process, no result) runs again with its seed.
    lost = {"number": 3, "running": [["999999", 13, 7, 1, 0.0, 2]]}
    third = ClusterEngine(2, tmp_path, cluster="local", poll_s=0.2)
    third.load_state_dict(lost, bench)
    finished = third.next_finished()
    assert (finished.arch, finished.worker) == (13, 1) and finished.reward == float(bench.query([13], rng)[0])
    assert len(set(tmp_path.glob("*_submitted.pkl")) - submitted) == 1 and ids
    third.close()


def test_slurm_engine_runs_a_search_with_the_local_executor(tmp_path):
    summary = run(compose_config("searcher=random", "workers=2", "engine=slurm", "+engine_params.cluster=local",
                                 "+engine_params.timeout_min=5", "budget=4", "stop_at_optimum=false"), tmp_path)
    rows = read_trace(tmp_path / TRACE)
    assert summary["engine"] == "slurm" and len(rows) == 4 and {r["worker"] for r in rows} == {"0", "1"}
    assert len(list((tmp_path / "submitit").glob("*_result.pkl"))) == 4


def test_a_run_recorded_before_the_parallel_keys_resumes(tmp_path):
    from lanas.app import resume_mode, run_config
    from lanas.checkpoint import Checkpointer

    cfg = compose_config("budget=30", "stop_at_optimum=false", "checkpoint_every=10")
    config = run_config(cfg)
    old = {k: v for k, v in config.items() if k not in ("workers", "engine", "simulated_seconds", "engine_params")}
    Checkpointer(tmp_path, 10, old, {}).save({"loop": LoopState(num_samples=3)})
    assert resume_mode(tmp_path, config) == "resume"
    with pytest.raises(ConfigError, match="workers: 1 -> 4"):
        resume_mode(tmp_path, run_config(compose_config("budget=30", "stop_at_optimum=false", "workers=4")))
