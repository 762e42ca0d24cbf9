"""The loop's core (lanas.loop.search) and the recorders a run attaches to it (lanas.runner, lanas.recorders)."""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from lanas.app import prepare, run
from lanas.checkpoint import Checkpointer, LoopState
from lanas.config import compose_config
from lanas.evaluators.base import Evaluator
from lanas.logging import RunLogger
from lanas.loop import finished, search, searcher_seconds
from lanas.recorders import ProgressBar
from lanas.rundir import CHECKPOINT, SUMMARY, TRACE
from lanas.searchers.base import Searcher
from lanas.spaces.base import Arch
from lanas.spaces.nasbench201 import NASBench201Space

ROOT = Path(__file__).resolve().parents[1]


class ListSearcher(Searcher):
    """Proposes a fixed list of architectures in order, then nothing."""

    def __init__(self, space, archs: list[int]) -> None:
        super().__init__(space, np.random.default_rng(0))
        self.todo = list(archs)

    def ask(self, n: int = 1) -> list[Arch]:
        out, self.todo = self.todo[:n], self.todo[n:]
        return out


class Rewards(Evaluator):
    """Reward = position / 100; position 7 is the one optimum."""

    def query(self, archs: Sequence[Arch], rng: np.random.Generator) -> np.ndarray:
        return np.asarray(archs, dtype=np.float64) / 100

    def is_optimal(self, archs: Sequence[Arch]) -> np.ndarray:
        return np.asarray(archs) == 7


@pytest.fixture(scope="module")
def space() -> NASBench201Space:
    return NASBench201Space()


def core(space, archs, budget, stop_at_optimum=True, state=None):
    searcher = ListSearcher(space, archs)
    return list(search(space, Rewards(), searcher, np.random.default_rng(0), budget, stop_at_optimum, state)), searcher


def test_core_yields_one_record_per_sample_up_to_the_budget(space):
    records, searcher = core(space, [3, 1, 5, 2, 9, 4], budget=4, stop_at_optimum=False)
    assert [r.sample for r in records] == [1, 2, 3, 4]
    assert [r.arch for r in records] == [3, 1, 5, 2] and searcher.archs == [3, 1, 5, 2]  # told each one
    assert [r.reward for r in records] == [0.03, 0.01, 0.05, 0.02]
    assert [r.best_reward for r in records] == [0.03, 0.03, 0.05, 0.05]
    assert all(r.searcher_s >= 0 for r in records)


def test_core_stops_at_the_optimum_only_when_asked(space):
    state = LoopState()
    records, _ = core(space, [3, 7, 8, 9], budget=10, state=state)
    assert [r.arch for r in records] == [3, 7] and records[-1].optimal
    assert state.samples_to_optimum == 2 and state.num_samples == 2
    assert state.best_arch == space.to_string(7) and finished(state, budget=10)
    records, _ = core(space, [3, 7, 8, 9], budget=10, stop_at_optimum=False)
    assert [r.arch for r in records] == [3, 7, 8, 9]  # and then the searcher has nothing left


def test_core_goes_on_from_a_restored_state(space):
    state = LoopState(num_samples=5, best_reward=0.04, best_arch=space.to_string(4))
    records, _ = core(space, [2, 6, 1], budget=7, stop_at_optimum=False, state=state)
    assert [r.sample for r in records] == [6, 7]
    assert [r.best_reward for r in records] == [0.04, 0.06] and state.best_arch == space.to_string(6)


def test_core_drives_a_configured_run_like_run_py(tmp_path):
    """The core alone (as the perf scripts and the ablation use it) gives run.py's trace."""
    cfg = compose_config("budget=60", "stop_at_optimum=false", "trace_timing=false")
    space, evaluator, searcher, info, eval_rng = prepare(cfg)
    records = list(search(space, evaluator, searcher, eval_rng, info.budget, False))
    run(cfg, tmp_path)
    with open(tmp_path / TRACE, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [space.to_string(r.arch) for r in records] == [row["arch"] for row in rows] and len(rows) == 60
    assert [repr(r.best_reward) for r in records] == [row["best_reward"] for row in rows]
    assert searcher_seconds(records) == sum(r.searcher_s for r in records) > 0


# ------------------------------------------------------------------------------------- recorders in a run
class OrderLogger(RunLogger):
    """Records what is on disk each time the tracker is called."""

    instances: list[OrderLogger] = []

    def __init__(self) -> None:
        OrderLogger.instances.append(self)

    def start(self, config, out_dir, name, group=None, tags=None, resume_step=0) -> None:
        self.out = Path(out_dir)
        self.seen: list[tuple[int, int, int | None]] = []
        self.summary_on_disk: dict | None = None

    def log(self, step, metrics) -> None:
        rows = (self.out / TRACE).read_text().count("\n") - 1
        saved = (Checkpointer(self.out, 1, {}, {}).read_header()["num_samples"]
                 if (self.out / CHECKPOINT).exists() else None)
        self.seen.append((step, rows, saved))

    def finish(self, summary) -> None:
        self.summary_on_disk = json.loads((self.out / SUMMARY).read_text())


def test_recorders_write_trace_then_tracker_then_checkpoint_and_summary_before_finish(tmp_path, monkeypatch):
    monkeypatch.setattr(OrderLogger, "instances", [])
    cfg = compose_config("budget=12", "stop_at_optimum=false", "checkpoint_every=1", "trace_timing=false")
    cfg.logger = {"_target_": f"{__name__}.OrderLogger"}
    summary = run(cfg, tmp_path)
    (logger,) = OrderLogger.instances
    # Every row is in the trace before the tracker hears of it, and the checkpoint of a sample comes after.
    assert logger.seen == [(step, step, step - 1 if step > 1 else None) for step in range(1, 13)]
    assert logger.summary_on_disk == summary


def test_a_recorder_raising_leaves_whole_rows_and_a_resumable_run(tmp_path, monkeypatch):
    cfg = compose_config("budget=40", "stop_at_optimum=false", "checkpoint_every=7", "trace_timing=false")
    run(cfg, tmp_path / "ref")
    reference = (tmp_path / "ref" / TRACE).read_text().splitlines(keepends=True)
    original = ProgressBar.on_sample

    def on_sample(self, record, state):
        if record.sample == 10:
            raise RuntimeError("recorder failed")
        original(self, record, state)

    monkeypatch.setattr(ProgressBar, "on_sample", on_sample)
    with pytest.raises(RuntimeError, match="recorder failed"):
        run(cfg, tmp_path / "res")
    # Trace rows come first: the failing sample's row is written whole, and nothing after it.
    assert (tmp_path / "res" / TRACE).read_text().splitlines(keepends=True) == reference[:11]
    assert not (tmp_path / "res" / SUMMARY).exists()
    assert Checkpointer(tmp_path / "res", 1, {}, {}).read_header()["num_samples"] == 7
    monkeypatch.undo()
    assert run(cfg, tmp_path / "res")["resumes"] == 1
    assert (tmp_path / "res" / TRACE).read_text().splitlines(keepends=True) == reference


def test_summary_records_pool_size_and_optima(tmp_path):
    summary = run(compose_config("budget=12", "stop_at_optimum=false"), tmp_path)
    assert summary["pool_size"] == 15_625 and summary["num_optima"] == 1
    assert json.loads((tmp_path / SUMMARY).read_text())["pool_size"] == 15_625


# ------------------------------------------------------------------------------------------ layering
def _imports(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth of its code (functions included)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_nothing_below_the_app_imports_it_and_experiments_do_not_import_tests():
    above_app = {"lanas/app.py", "lanas/config.py"}
    for path in sorted((ROOT / "lanas").rglob("*.py")):
        name = str(path.relative_to(ROOT))
        if name not in above_app:
            assert not {"lanas.app", "lanas.config"} & _imports(path), f"{name} imports the app layer"
    assert "lanas.analysis" not in _imports(ROOT / "lanas" / "logging.py")
    assert not {"lanas.runner", "lanas.recorders"} & _imports(ROOT / "lanas" / "loop.py")
    for path in sorted((ROOT / "experiments").glob("*.py")) + sorted((ROOT / "perf").glob("*.py")):
        assert not any(m == "tests" or m.startswith("tests.") for m in _imports(path)), f"{path} imports tests"


def test_summary_line_explains_a_sampled_best_above_the_optimum():
    from lanas.runner import summary_line

    summary = {"searcher": "lanas", "benchmark": "nasbench201", "dataset": "cifar10", "seed": 0,
               "samples_to_optimum": 257, "num_samples": 257, "wall_time_s": 0.1, "global_optimum": 0.916067}
    above = summary_line({**summary, "best_reward": 0.916520}, "out")
    assert "one sampled seed's accuracy" in above and "\n" not in above
    assert "sampled" not in summary_line({**summary, "best_reward": 0.916067}, "out")
