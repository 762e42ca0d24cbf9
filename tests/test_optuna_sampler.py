"""lanas.optuna.LaNASSampler (an Optuna sampler on PartitionTree) and the hydra/sweeper=lanas plugin."""

from __future__ import annotations

import math
import os
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest

import lanas
from lanas.errors import ConfigError
from perf.optuna_sampler import mixed, styblinski_tang

ROOT = Path(__file__).resolve().parents[1]
optuna.logging.set_verbosity(optuna.logging.WARNING)


def run_study(sampler: optuna.samplers.BaseSampler, objective=mixed, n_trials: int = 40) -> optuna.Study:
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=n_trials)
    return study


def test_import_lanas_does_not_import_optuna_until_lanas_optuna_is_used():
    code = ("import sys, lanas; assert 'optuna' not in sys.modules; "
            "print(lanas.optuna.LaNASSampler.__name__, 'optuna' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["LaNASSampler", "True"]


def test_optimises_a_mixed_space_through_create_study_with_valid_values():
    sampler = lanas.optuna.LaNASSampler(seed=0)
    study = run_study(sampler)
    assert sampler.stats["tree"] == 30  # every trial after the 10 random ones came from the tree
    assert sampler.stats["local"] > 0 and sampler.stats["region"] > 0
    for trial in study.trials:
        p = trial.params
        assert -5 <= p["x"] <= 5 and 1e-5 <= p["lr"] <= 1e-1 and isinstance(p["n"], int) and 1 <= p["n"] <= 64
        assert p["q"] in (0.0, 0.25, 0.5, 0.75, 1.0) and p["opt"] in ("adam", "sgd", "rmsprop")
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 40
    assert study.best_value < min(t.value for t in study.trials[:10])  # the tree improved on the random start


def test_same_seed_same_trials_another_seed_others_and_both_presets_run():
    first = [t.params for t in run_study(lanas.optuna.LaNASSampler(seed=3), n_trials=25).trials]
    assert [t.params for t in run_study(lanas.optuna.LaNASSampler(seed=3), n_trials=25).trials] == first
    assert [t.params for t in run_study(lanas.optuna.LaNASSampler(seed=4), n_trials=25).trials] != first
    paper = lanas.optuna.LaNASSampler(seed=3, preset="lanas")
    assert paper.tree_height == 5 and paper.split == "regression" and paper.local_prob == 0.0
    run_study(paper, n_trials=25)
    assert paper.stats["tree"] == 15 and paper.stats["local"] == 0


def test_beats_random_search_on_styblinski_tang():
    # Fixed seeds: the outcome is deterministic, not a matter of luck at test time. Measured margin
    # (perf/optuna_sampler.py, 20 seeds): see docs/optuna.md.
    seeds = range(6)
    ours = [run_study(lanas.optuna.LaNASSampler(seed=s), styblinski_tang, 60).best_value for s in seeds]
    rand = [run_study(optuna.samplers.RandomSampler(seed=s), styblinski_tang, 60).best_value for s in seeds]
    assert np.mean(ours) < np.mean(rand) - 5, (ours, rand)
    assert sum(a < b for a, b in zip(ours, rand)) >= 5, (ours, rand)


STUDY_SCRIPT = textwrap.dedent("""
    import math, sys, optuna, lanas
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url, n = sys.argv[1], int(sys.argv[2])
    def objective(trial):
        x = trial.suggest_float("x", -5, 5)
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        opt = trial.suggest_categorical("opt", ["adam", "sgd"])
        return (x - 1.3) ** 2 + (math.log10(lr) + 3) ** 2 + (opt == "sgd")
    study = optuna.create_study(study_name="s", storage=url, load_if_exists=True,
                                sampler=lanas.optuna.LaNASSampler(seed=0))
    study.optimize(objective, n_trials=n)
""")


def python(script: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(script), *args], env=env, stderr=subprocess.PIPE, text=True)


def params_of(url: str) -> list[dict]:
    return [t.params for t in optuna.load_study(study_name="s", storage=url).trials]


def test_a_sqlite_study_resumed_in_a_new_process_continues_as_if_never_stopped(tmp_path):
    script = tmp_path / "study.py"
    script.write_text(STUDY_SCRIPT)
    in_process = compile(STUDY_SCRIPT.replace("url, n = sys.argv[1], int(sys.argv[2])", "url, n = URL, N"),
                         "study", "exec")
    straight: dict = {"URL": None, "N": 30}
    exec(in_process, straight)  # the same 30 trials in memory, without a stop
    url = f"sqlite:///{tmp_path / 'resumed.db'}"
    exec(in_process, {"URL": url, "N": 15})  # 15 trials here, then a new process goes on
    proc = python(script, url, "15")
    assert proc.wait(timeout=300) == 0, proc.stderr.read()
    assert len(params_of(url)) == 30
    assert params_of(url) == [t.params for t in straight["study"].trials]  # rebuilt from the study's trials, no hidden state


def test_two_processes_sharing_a_study_draw_different_points_with_the_same_seed(tmp_path):
    script = tmp_path / "study.py"
    script.write_text(STUDY_SCRIPT)
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(study_name="s", storage=url)  # before the workers, so that neither races to create it
    workers = [python(script, url, "12") for _ in range(2)]
    for proc in workers:
        assert proc.wait(timeout=300) == 0, proc.stderr.read()
    params = params_of(url)
    assert len(params) == 24 and len({tuple(sorted(p.items())) for p in params}) == 24


def test_a_distribution_that_changes_between_trials_is_a_one_line_error():
    study = optuna.create_study(sampler=lanas.optuna.LaNASSampler(seed=0, n_startup_trials=2))

    def dynamic(trial: optuna.Trial) -> float:
        return trial.suggest_float("x", 0, 1 + trial.number)  # the range grows every trial

    with pytest.raises(ConfigError) as err:
        study.optimize(dynamic, n_trials=5)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("LaNASSampler cannot encode parameter 'x': its distribution changed between trials")


def test_conditional_parameters_are_drawn_by_the_random_sampler():
    def conditional(trial: optuna.Trial) -> float:
        x = trial.suggest_float("x", -5, 5)
        extra = trial.suggest_float(f"only_in_{trial.number % 3}", 0, 1)  # never in every trial
        return x**2 + extra

    sampler = lanas.optuna.LaNASSampler(seed=0)
    study = run_study(sampler, conditional, 30)
    assert sampler.stats["tree"] == 20 and len(study.trials) == 30


def test_bad_sampler_arguments_and_a_multi_objective_study_are_one_line_errors():
    with pytest.raises(ConfigError, match=r"^LaNASSampler.preset='la' is unknown; allowed: lanas, lanas_plus$"):
        lanas.optuna.LaNASSampler(preset="la")
    with pytest.raises(ConfigError, match=r"^LaNASSampler.local_prob must be <= 1.0, got 2.0$"):
        lanas.optuna.LaNASSampler(local_prob=2.0)
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=lanas.optuna.LaNASSampler(seed=0))
    with pytest.raises(ConfigError, match="LaNASSampler optimises one objective"):
        study.optimize(lambda t: (t.suggest_float("x", 0, 1), 0.0), n_trials=1)


# ------------------------------------------------------------------ the Hydra sweeper
def readme_sweeper_command() -> list[str]:
    """The README's example of hydra/sweeper=lanas, split as a POSIX shell splits it."""
    lines = [line for line in (ROOT / "README.md").read_text().splitlines()
             if line.startswith("python ") and "hydra/sweeper=lanas" in line]
    assert lines, "README shows no hydra/sweeper=lanas example"
    return shlex.split(re.sub(r"\s+#.*$", "", lines[0].strip()))


def run_app(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "0"}
    return subprocess.run([sys.executable, *args, f"hydra.sweep.dir={tmp_path / 'sweep'}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_readme_sweeper_example_tunes_the_tiny_hydra_app(tmp_path):
    words = readme_sweeper_command()
    assert words[:3] == ["python", "-m", "tests.hydra_app.my_app"]
    result = run_app(words[1:], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    best = (tmp_path / "sweep" / "optimization_results.yaml").read_text()
    assert "best_params:" in best and "opt:" in best
    jobs = sorted(p.name for p in (tmp_path / "sweep").iterdir() if p.name.isdigit())
    n_trials = int(next(w for w in words if w.startswith("hydra.sweeper.n_trials=")).split("=")[1])
    assert len(jobs) == n_trials


def test_sweeper_log_interval_with_a_non_positive_bound_is_one_line_exit_2(tmp_path):
    result = run_app(["-m", "tests.hydra_app.my_app", "-m", "hydra/sweeper=lanas", "x=interval(-5,5)",
                      "lr=tag(log,interval(0,0.1))"], tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: hydra.sweeper: lr: log=True needs a positive lower bound, got interval(0.0,0.1)")
