"""The command line as a user meets it: a stop at any moment, the printed resume hint, odd arguments."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lanas.app import with_stored_overrides
from lanas.cli import torch_threads
from lanas.errors import ConfigError
from lanas.training.final import quote_arch_override

ROOT = Path(__file__).resolve().parents[1]


def env() -> dict[str, str]:
    values = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    values.pop("HYDRA_FULL_ERROR", None)
    return values


def run_py(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "run.py"), "progress=false", *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def start_py(*args: str) -> subprocess.Popen:
    # Its own process group, like a job in a terminal: Ctrl-C reaches wandb's helper process too.
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), "progress=false", *args], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


def handlers_installed(pid: int) -> bool:
    """Whether the process catches SIGTERM (Python alone does not; our handlers do)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGTERM - 1)))
    return False


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc to see the handlers")
def test_a_stop_during_imports_is_one_line_and_exit_130():
    proc = start_py("logger=none", "hydra.run.dir=/nonexistent-never-created")
    deadline = time.monotonic() + 60
    while not handlers_installed(proc.pid):  # the first thing run.py does; then come the heavy imports
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("interrupted: stopped by SIGINT")


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_while_setting_up_leaves_an_incomplete_run_that_resumes(tmp_path, signum, code):
    run_dir = tmp_path / "run"
    # logger=wandb (offline): the stop may land inside wandb.init, the slowest part of the set-up.
    proc = start_py("logger=wandb", "budget=300", "stop_at_optimum=false", f"hydra.run.dir={run_dir}")
    wait_for(run_dir / ".hydra" / "overrides.yaml", proc)  # Hydra is done: our set-up has begun
    os.killpg(proc.pid, signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"continue with: python run.py resume={run_dir}" in err
    assert json.loads((run_dir / "summary.json").read_text())["complete"] is False

    # The printed hint works as printed: the stored overrides (budget, stop_at_optimum) come back.
    resumed = run_py(f"resume={run_dir}", "logger=none")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is True and summary["num_samples"] == 300 and summary["budget"] == 300


def test_the_interrupt_hint_resumes_with_the_run_s_own_overrides(tmp_path):
    run_dir = tmp_path / "run"
    proc = start_py("logger=none", "budget=15000", "stop_at_optimum=false", "checkpoint_every=20",
                    f"hydra.run.dir={run_dir}")
    wait_for(run_dir / "checkpoint.pkl", proc)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    hint = err.strip().rsplit("continue with: ", 1)[1]
    assert hint == f"python run.py resume={run_dir}"
    partial = json.loads((run_dir / "summary.json").read_text())
    assert partial["complete"] is False and 0 < partial["num_samples"] < 15000

    # A key that changes the result is refused by name; logger (bookkeeping) may change.
    refused = run_py(f"resume={run_dir}", "budget=20000", "logger=none")
    assert refused.returncode == 2 and "budget: 15000 -> 20000" in refused.stderr, refused.stderr
    assert with_stored_overrides([f"resume={run_dir}", "logger=csv"]) == [
        "progress=false", "budget=15000", "stop_at_optimum=false", "checkpoint_every=20", f"resume={run_dir}",
        "logger=csv"]


def test_resume_of_a_missing_folder_says_so(tmp_path):
    result = run_py(f"resume={tmp_path / 'does-not-exist'}", "logger=none")
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: resume={tmp_path / 'does-not-exist'} does not exist " \
                                    "(give the run directory printed by the run)"
    with pytest.raises(ConfigError, match="does not exist"):
        with_stored_overrides([f"resume={tmp_path / 'nope'}"])
    assert with_stored_overrides(["-m", "seed=1,2"]) == ["-m", "seed=1,2"]


def test_final_training_takes_the_readme_arch_form_and_says_what_is_wrong_in_one_line(tmp_path):
    # The shell removed the quotes of arch='normal:|...|;reduce:|...|' (the README form).
    assert quote_arch_override(["arch=normal:|a~1|;reduce:|b~0|", "seed=1"]) == [
        "arch='normal:|a~1|;reduce:|b~0|'", "seed=1"]
    assert quote_arch_override(["arch='x'"]) == ["arch='x'"]
    result = subprocess.run([sys.executable, "-m", "lanas.training.final", "experiment=final_smoke",
                             f"final_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'hydra'}",
                             "arch=normal:|...|;reduce:|...|"], cwd=ROOT, env=env(),
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "LexerNoViableAlt" not in lines[0], lines


def test_torch_threads_honours_config_then_environment(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert torch_threads(2) == 2 and torch_threads(None) == 3
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert 1 <= torch_threads(None) <= 4
    with pytest.raises(ConfigError, match="threads must be >= 1"):
        torch_threads(0)


def test_a_stop_during_supernet_training_is_one_line_and_exit_143(tmp_path):
    # Lightning turns a stop during fit into its own messages and exit 1; the entry point reports it.
    proc = subprocess.Popen([sys.executable, "-m", "lanas.training.train_supernet", "experiment=oneshot_smoke",
                             f"supernet_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'hydra'}"], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    wait_for(tmp_path / "logs", proc)  # CSVLogger's folder: fit has started
    os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    lines = [line for line in err.strip().splitlines() if "available:" not in line]  # Lightning's device lines
    assert lines == ["interrupted: stopped by SIGTERM during training; the same command continues from the last "
                     "saved epoch"], err


def test_threads_reach_the_train_evaluator_and_do_not_block_a_resume(tmp_path):
    from lanas.app import ignored_keys
    from lanas.checkpoint import config_diff
    from tests.helpers import compose_config

    cfg = compose_config("experiment=oneshot_smoke", "evaluator=train", "threads=2")
    assert cfg.evaluator.threads == 2  # also inside submitit jobs, which start with torch's default
    one, two = ({"threads": n, "evaluator": {"threads": n}, "seed": 0} for n in (1, 2))
    assert config_diff(one, two, ignored_keys(two)) == []  # speed, not results
