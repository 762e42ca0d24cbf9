"""Issue 14: no run can be corrupted or hijacked.

- a checkpoint cannot run code, wherever it is read (complete run, ``resume=``, a refused config, a
  restarted sweep): the payload is refused by name, in one line, exit 2, before anything runs;
- one process per run directory: a second one stops at once naming the holder's PID; a SIGKILLed
  holder releases the lock;
- a refused job leaves every byte of the finished run as it was, ``.hydra/`` included, and reports
  read the configuration the run recorded when it started.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lanas.app import run
from lanas.checkpoint import Checkpointer, CheckpointError, allowed_global
from lanas.config import compose_config
from lanas.errors import ConfigError
from lanas.rundir import LOCK, RUN_CONFIG, lock_run_dir, read_overrides, unlock_run_dir

ROOT = Path(__file__).resolve().parents[1]
FAST = ["logger=none", "progress=false", "trace_timing=false"]


def run_py(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    flags = [arg for arg in args if arg.startswith("-")]  # argparse: -m before the overrides
    overrides = [arg for arg in args if not arg.startswith("-")]
    return subprocess.run([sys.executable, str(ROOT / "run.py"), *flags, *FAST, *overrides], cwd=ROOT,
                          env=_env(), capture_output=True, text=True, timeout=timeout)


def _env() -> dict[str, str]:
    env = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    return env


def start_py(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(ROOT / "run.py"), *FAST, *args], cwd=ROOT, env=_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def rows(trace: Path) -> list[dict[str, str]]:
    with open(trace, newline="") as handle:
        return list(csv.DictReader(handle))


# --- 1. checkpoints cannot run code -------------------------------------------------------------------

class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class ProjectFunction:
    """Unpickling this would call a function of the project (it writes any file it is given)."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __reduce__(self):
        from lanas.rundir import write_json_atomic

        return write_json_atomic, (self.target, {"pwned": True})


def plant(run_dir: Path, marker: Path, where: str) -> None:
    """Replace the run's checkpoint by one carrying ``Payload`` in its header or in its state."""
    header = Checkpointer(run_dir, 1, {}, {}).read_header()
    path = run_dir / "checkpoint.pkl"
    with open(path, "wb") as handle:
        if where == "header":
            pickle.dump({**header, "evil": Payload(marker)}, handle, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            pickle.dump(header, handle, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump({"searcher": Payload(marker), "loop": None}, handle, protocol=pickle.HIGHEST_PROTOCOL)


def test_a_crafted_checkpoint_is_refused_before_it_runs(tmp_path):
    """Every way run.py reads a checkpoint: a complete run, ``resume=`` of an incomplete one, a run
    refused for a different config; the payload in the header and in the state."""
    common = ["budget=120", "stop_at_optimum=false", "checkpoint_every=20"]
    cases = {
        "complete": ("header", ["hydra.run.dir={d}"]),
        "resume-header": ("header", ["resume={d}"]),
        "resume-state": ("state", ["resume={d}"]),
        "other-config": ("header", ["hydra.run.dir={d}", "searcher.Cp=0.5"]),
    }
    for name, (where, args) in cases.items():
        run_dir, marker = tmp_path / name, tmp_path / f"{name}.marker"
        run(compose_config(*FAST, *common), run_dir)
        if name != "complete":  # an incomplete run: what a resume would continue
            summary = json.loads((run_dir / "summary.json").read_text())
            (run_dir / "summary.json").write_text(json.dumps({**summary, "complete": False}))
        plant(run_dir, marker, where)
        before = digests(run_dir)
        result = run_py(*common, *(arg.format(d=run_dir) for arg in args))
        one_error_line(result, "posix.system", str(run_dir / "checkpoint.pkl"), "refused without running it")
        assert not marker.exists(), f"{name}: the payload ran"
        assert digests(run_dir) == before, f"{name}: the run directory changed"


def test_a_restarted_sweep_refuses_a_crafted_checkpoint(tmp_path):
    sweep, marker = tmp_path / "sweep", tmp_path / "marker"
    args = ("-m", "budget=60", "stop_at_optimum=false", "searcher.Cp=0.1,0.2", f"hydra.sweep.dir={sweep}")
    assert run_py(*args).returncode == 0
    plant(sweep / "0", marker, "header")
    one_error_line(run_py(*args), "posix.system", str(sweep / "0" / "checkpoint.pkl"))
    assert not marker.exists()


def test_the_allowlist_holds_no_function_of_the_project(tmp_path):
    run_dir = tmp_path / "run"
    run(compose_config(*FAST, "budget=30", "stop_at_optimum=false"), run_dir)
    header = Checkpointer(run_dir, 1, {}, {}).read_header()
    target = tmp_path / "written.json"
    with open(run_dir / "checkpoint.pkl", "wb") as handle:
        pickle.dump({**header, "evil": ProjectFunction(target)}, handle)
    with pytest.raises(CheckpointError) as info:
        Checkpointer(run_dir, 1, {}, {}).read_header()
    assert "lanas.rundir.write_json_atomic" in str(info.value) and not target.exists()
    assert not allowed_global("builtins", "eval") and not allowed_global("subprocess", "Popen")
    assert not allowed_global("lanas.searchers", "__import__") and allowed_global("numpy", "dtype")


@pytest.mark.parametrize("searcher", sorted(p.stem for p in (ROOT / "conf" / "searcher").glob("*.yaml")))
def test_every_searchers_checkpoint_passes_the_allowlist(searcher, tmp_path):
    """What a real checkpoint holds is allowed: a clean stop at sample 60 of 120 resumes to the end."""
    cfg = compose_config(*FAST, f"searcher={searcher}", "budget=120", "stop_at_optimum=false",
                         "benchmark.reward=sampled", "checkpoint_every=30")
    run(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    (tmp_path / "summary.json").write_text(json.dumps({**summary, "complete": False}))
    header, state = Checkpointer(tmp_path, 1, {}, _AnyExternal()).load()
    assert header["num_samples"] == 120 and state["loop"].num_samples == 120


class _AnyExternal(dict):
    def __contains__(self, key):
        return True

    def __getitem__(self, key):
        return None


# --- 2. one process per run directory -----------------------------------------------------------------

def _wait_for_rows(path: Path, count: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) > count:
            return
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    raise AssertionError(f"{path} did not reach {count} rows")


def test_a_second_process_on_the_same_folder_stops_at_once(tmp_path):
    run_dir = tmp_path / "run"
    args = ("budget=2000", "stop_at_optimum=false", "checkpoint_every=100", f"hydra.run.dir={run_dir}")
    first = start_py(*args)
    try:
        _wait_for_rows(run_dir / "trace.csv", 50, first)
        first.send_signal(signal.SIGSTOP)  # holds the lock, mid-run, for as long as the test needs
        try:
            assert (run_dir / LOCK).read_text().strip() == str(first.pid)
            for second_args in (args, (*args[:-1], f"resume={run_dir}"), (*args, "seed=1")):
                started = time.monotonic()
                second = run_py(*second_args, timeout=60)
                one_error_line(second, str(run_dir), f"PID {first.pid}", "in use by another lanas process")
                assert time.monotonic() - started < 30
        finally:
            first.send_signal(signal.SIGCONT)
        out, err = first.communicate(timeout=300)
        assert first.returncode == 0, err
    finally:
        first.kill()
    summary = json.loads((run_dir / "summary.json").read_text())
    trace = rows(run_dir / "trace.csv")
    assert summary["complete"] is True and summary["seed"] == 0
    assert [int(r["sample"]) for r in trace] == list(range(1, 2001))
    assert b"\0" not in (run_dir / "trace.csv").read_bytes()


def test_a_sigkilled_holder_releases_the_lock(tmp_path):
    run_dir = tmp_path / "run"
    args = ("budget=2000", "stop_at_optimum=false", "checkpoint_every=100")
    first = start_py(*args, f"hydra.run.dir={run_dir}")
    _wait_for_rows(run_dir / "trace.csv", 250, first)
    first.send_signal(signal.SIGKILL)
    first.communicate(timeout=60)
    resumed = run_py(*args, f"resume={run_dir}")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["complete"] is True and summary["resumes"] == 1
    assert [int(r["sample"]) for r in rows(run_dir / "trace.csv")] == list(range(1, 2001))


def test_in_process_runs_take_and_release_the_lock(tmp_path):
    cfg = compose_config(*FAST, "budget=40", "stop_at_optimum=false")
    run(cfg, tmp_path)
    run(cfg, tmp_path)  # the same process, after the first run released it
    child = subprocess.run([sys.executable, "-c", (
        "import sys; from lanas.rundir import lock_run_dir; lock_run_dir(sys.argv[1]); print('locked')"),
        str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert child.stdout.strip() == "locked", child.stderr
    assert lock_run_dir(tmp_path)
    try:
        child = subprocess.run([sys.executable, "-c", (
            "import sys; from lanas.app import guard_run_dir; guard_run_dir(sys.argv[1], {})"),
            str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert child.returncode != 0
        assert f"PID {os.getpid()}" in child.stderr and "in use by another lanas process" in child.stderr
    finally:
        unlock_run_dir(tmp_path)


def test_temporary_files_have_unique_names(tmp_path):
    from lanas.rundir import temporary_beside

    names = set()
    for _ in range(5):
        fd, path = temporary_beside(tmp_path / "checkpoint.pkl")
        os.close(fd)
        names.add(path.name)
        assert path.name.startswith(".checkpoint.pkl.") and path.name.endswith(".tmp")
    assert len(names) == 5


# --- 3. a refused job leaves the finished run untouched -----------------------------------------------

def test_a_refused_run_leaves_every_file_untouched(tmp_path):
    run_dir = tmp_path / "run"
    args = ("budget=100", "stop_at_optimum=false", f"hydra.run.dir={run_dir}")
    assert run_py(*args).returncode == 0
    before = digests(run_dir)
    assert ".hydra/overrides.yaml" in before and ".hydra/config.yaml" in before and RUN_CONFIG in before
    one_error_line(run_py(*args, "searcher.Cp=0.5"), "searcher.Cp: 0.1 -> 0.5")
    assert digests(run_dir) == before


def test_a_refused_sweep_job_leaves_its_run_untouched_and_reports_read_the_recorded_config(tmp_path):
    sweep = tmp_path / "sweep"
    common = ("-m", "budget=60", "stop_at_optimum=false", f"hydra.sweep.dir={sweep}")
    assert run_py(*common, "searcher.Cp=0.1,0.2").returncode == 0
    before = digests(sweep / "0")  # the job's run (the sweep's own multirun.yaml describes the last sweep)
    assert read_overrides(sweep / "0")["searcher.Cp"] == 0.1
    one_error_line(run_py(*common, "searcher.Cp=0.5,0.2"), "searcher.Cp: 0.1 -> 0.5")
    assert digests(sweep / "0") == before
    # reports prefer run_config.json, which lanas writes once, over Hydra's file
    (sweep / "0" / ".hydra" / "overrides.yaml").write_text("- searcher.Cp=0.9\n")
    assert read_overrides(sweep / "0")["searcher.Cp"] == 0.1
    assert json.loads((sweep / "0" / RUN_CONFIG).read_text())["config"]["searcher"]["Cp"] == 0.1


def test_a_run_killed_before_its_first_checkpoint_refuses_another_config(tmp_path):
    cfg = compose_config(*FAST, "budget=40", "stop_at_optimum=false")
    run(cfg, tmp_path)
    (tmp_path / "checkpoint.pkl").unlink()
    (tmp_path / "summary.json").unlink()
    with pytest.raises(ConfigError, match="different config"):
        run(compose_config(*FAST, "budget=40", "stop_at_optimum=false", "seed=1"), tmp_path)


# --- 4. NAS-Bench-101 subset tables are validated ---------------------------------------------------------

def _subset(n: int = 4) -> dict:
    return {
        "key": [f"{i:032x}" for i in range(n)],
        "4_final_validation_accuracy": [0.5 + i / 100 for i in range(n)],
        "108_final_validation_accuracy": [0.9 + i / 100 for i in range(n)],
        "final_training_time": [100.0 * (i + 1) for i in range(n)],
        "trainable_parameters": [1000 * (i + 1) for i in range(n)],
    }


def _edit(**changes):
    def make() -> str:
        data = _subset()
        for column, (index, value) in changes.items():
            data[column][index] = value
        return json.dumps(data)
    return make


BAD_TABLES = {
    "infinity": (_edit(**{"108_final_validation_accuracy": (2, float("inf"))}),
                 ["108_final_validation_accuracy[2]", "Infinity", "finite"]),
    "nan": (_edit(**{"4_final_validation_accuracy": (1, float("nan"))}), ["4_final_validation_accuracy[1]", "finite"]),
    "percent": (lambda: json.dumps({**_subset(), "108_final_validation_accuracy": [94.67, 93.1, 92.0, 91.0]}),
                ["108_final_validation_accuracy[0]", "94.67", "[0, 1]", "percentage"]),
    "negative": (_edit(**{"4_final_validation_accuracy": (0, -0.1)}), ["[0, 1]"]),
    "string-accuracy": (_edit(**{"4_final_validation_accuracy": (3, "0.9")}), ["finite number"]),
    "duplicate-json-key": (lambda: json.dumps(_subset())[:-1] + ', "108_final_validation_accuracy": [0.99, 0.1, 0.1, 0.1]}',
                           ["'108_final_validation_accuracy'", "appears once"]),
    "duplicate-hash": (_edit(key=(3, f"{1:032x}")), ["key[3]", "also key[1]"]),
    "long-hash": (_edit(key=(0, "0" * 36)), ["key[0]", "32 lowercase hex"]),
    "upper-hash": (_edit(key=(0, "A" * 32)), ["key[0]", "32 lowercase hex"]),
    "key-object": (lambda: json.dumps({**_subset(), "key": {"a": 1}}), ["'key'", "list of module hashes"]),
    "null-params": (_edit(trainable_parameters=(2, None)), ["trainable_parameters[2]", "= null", "integer"]),
    "float-params": (_edit(trainable_parameters=(1, 1.5)), ["trainable_parameters[1]", "integer"]),
    "non-ascii-key": (lambda: json.dumps({**_subset(), "clé": [1, 2, 3, 4]}), ["'clé'", "ASCII"]),
    "bad-time": (_edit(final_training_time=(0, -5.0)), ["final_training_time[0]", ">= 0"]),
}


@pytest.mark.parametrize("case", sorted(BAD_TABLES))
def test_a_bad_subset_table_is_refused_in_one_line(case, tmp_path):
    from lanas.errors import BenchmarkDataError
    from lanas.nasbench101.table import load_table

    make, fragments = BAD_TABLES[case]
    path = tmp_path / "subset.json"
    path.write_text(make(), encoding="utf-8")
    with pytest.raises(BenchmarkDataError) as info:
        load_table(path)
    message = str(info.value)
    assert "\n" not in message and len(message) <= 300, message
    for fragment in (str(path), *fragments):
        assert fragment in message, (fragment, message)


def test_a_good_subset_table_loads_and_a_bad_one_stops_run_py(tmp_path):
    from lanas.nasbench101.table import load_table

    good = tmp_path / "good.json"
    good.write_text(json.dumps(_subset()))
    table = load_table(good)
    assert table.hashes.shape == (4,) and table.trainable_parameters.tolist() == [1000, 2000, 3000, 4000]
    bad = tmp_path / "bad.json"
    bad.write_text(BAD_TABLES["infinity"][0]())
    result = run_py("benchmark=nasbench101", "search_space=nasbench101", f"benchmark.path={bad}",
                    "benchmark.reward=val_mean", f"hydra.run.dir={tmp_path / 'run'}")
    one_error_line(result, str(bad), "finite")
    directory = run_py("benchmark=nasbench101", "search_space=nasbench101", f"benchmark.path={tmp_path}",
                       "benchmark.reward=val_mean", f"hydra.run.dir={tmp_path / 'run2'}")
    one_error_line(directory, str(tmp_path), "is a directory")


@pytest.mark.skipif(not (ROOT.parent / "shared" / "data" / "nb101-subset" / "data-20k.json").is_file()
                    and not Path("/work/shared/data/nb101-subset/data-20k.json").is_file(),
                    reason="needs ../shared/data/nb101-subset/data-20k.json (the real 20k slice)")
def test_the_real_20k_slice_passes_validation():
    from lanas.nasbench101.table import load_table

    path = ROOT.parent / "shared" / "data" / "nb101-subset" / "data-20k.json"
    if not path.is_file():
        path = Path("/work/shared/data/nb101-subset/data-20k.json")
    table = load_table(path)
    assert table.hashes.shape == (20001,)


# --- 5. one line for bad folders, full disks, read-only folders ------------------------------------------

def test_bad_run_directories_end_in_one_line(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("keep me\n")
    one_error_line(run_py("budget=20", f"hydra.run.dir={a_file}"), str(a_file), "is a file, not a run directory")
    assert a_file.read_text() == "keep me\n"
    one_error_line(run_py("budget=20", f"hydra.run.dir={a_file}/run"), f"cannot write in {a_file}/run")
    before = sorted(p.name for p in ROOT.iterdir())
    one_error_line(run_py("budget=20", "hydra.run.dir="), "hydra.run.dir is empty")
    assert sorted(p.name for p in ROOT.iterdir()) == before  # nothing written into the repository
    one_error_line(run_py("budget=20", "resume_ignore=abc", f"hydra.run.dir={tmp_path / 'r'}"),
                   "resume_ignore must be a list of config keys, got 'abc'")
    assert not (tmp_path / "r").exists()


def _read_only(folder: Path):
    """A read-only view of ``folder``: a read-only bind mount as root (chmod does not stop root), else chmod."""
    if os.geteuid() != 0:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(path.stat().st_mode & ~0o222)
        return folder, lambda: [p.chmod(p.stat().st_mode | 0o200) for p in [folder, *folder.rglob("*")]]
    view = folder.with_name(folder.name + "-ro")
    view.mkdir()
    bind = subprocess.run(["mount", "--bind", str(folder), str(view)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"root without mount: cannot make a read-only folder ({bind.stderr.decode().strip()})")
    subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
    return view, lambda: subprocess.run(["umount", str(view)], check=True)


def test_a_read_only_folder(tmp_path):
    run_dir = tmp_path / "run"
    args = ("budget=50", "stop_at_optimum=false")
    assert run_py(*args, f"hydra.run.dir={run_dir}").returncode == 0
    before = digests(run_dir)
    view, restore = _read_only(run_dir)
    try:
        with pytest.raises(OSError):
            (view / "probe").write_text("x")
        complete = run_py(*args, f"hydra.run.dir={view}")  # complete: its summary line all the same
        assert complete.returncode == 0, complete.stderr
        assert complete.stdout.startswith("lanas on nasbench201/cifar10 seed=0:") and complete.stderr == ""
        one_error_line(run_py(*args, f"hydra.run.dir={view}/new"), f"cannot write in {view}/new")
    finally:
        restore()
    assert digests(run_dir) == before


def test_a_full_disk_while_writing_the_trace_is_one_line_and_resumable(tmp_path, monkeypatch):
    import errno

    from lanas.recorders import TraceWriter
    from lanas.runner import RunWriteError

    real_open = TraceWriter._open

    class FullAfter:
        def __init__(self, handle, limit):
            self.handle, self.left = handle, limit

        def write(self, text):
            self.left -= len(text)
            if self.left < 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return self.handle.write(text)

        def __getattr__(self, name):
            return getattr(self.handle, name)

    cfg = compose_config(*FAST, "budget=300", "stop_at_optimum=false", "checkpoint_every=50")
    with monkeypatch.context() as patch:
        patch.setattr(TraceWriter, "_open", lambda self, state, columns: FullAfter(real_open(self, state, columns),
                                                                                    20000))
        with pytest.raises(RunWriteError) as info:
            run(cfg, tmp_path)
    message = str(info.value)
    assert "\n" not in message and "at sample 1" in message  # past the checkpoints at 50 and 100
    for fragment in (str(tmp_path / "trace.csv"), "No space left on device", "its last checkpoint is intact",
                     f"resume={tmp_path}"):
        assert fragment in message, (fragment, message)
    summary = run(cfg, tmp_path)  # space freed: the run continues from its checkpoint
    assert summary["complete"] and summary["resumes"] == 1
    assert [int(r["sample"]) for r in rows(tmp_path / "trace.csv")] == list(range(1, 301))


def test_the_previous_checkpoint_is_intact_only_when_there_was_one(tmp_path, monkeypatch):
    import errno

    import lanas.checkpoint as checkpoint_module

    def dump(self, obj):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(checkpoint_module._Pickler, "dump", dump)
    with pytest.raises(CheckpointError) as info:
        run(compose_config(*FAST, "budget=60", "stop_at_optimum=false", "checkpoint_every=20"), tmp_path)
    assert "previous checkpoint is intact" not in str(info.value)
    assert "no checkpoint was saved yet" in str(info.value) and "sample 20" in str(info.value)
    assert not (tmp_path / "checkpoint.pkl").exists() and not list(tmp_path.glob(".*.tmp"))


def test_error_lines_are_capped(tmp_path):
    from lanas.cli import MAX_ERROR_LINE, error_line

    long = error_line("x" * 900 + " resume with resume=/the/end")
    assert len(long) <= MAX_ERROR_LINE and long.endswith("resume with resume=/the/end")
    assert error_line("two\nlines") == "error: two lines"
    run_dir = tmp_path / "run"
    assert run_py("budget=30", "stop_at_optimum=false", f"hydra.run.dir={run_dir}").returncode == 0
    changed = ("budget=31", "stop_at_optimum=true", "searcher.Cp=0.7", "searcher.tree_height=4",
               "searcher.init_samples=12", "seed=3", "benchmark.reward=sampled", "dataset=cifar100")
    line = one_error_line(run_py(*changed, f"hydra.run.dir={run_dir}"), "different config", "more")
    assert len(line) <= MAX_ERROR_LINE, line


# --- 7. folders still held by a live process (e.g. orphaned sweep workers) can be listed ----------------

def test_locked_runs_lists_the_live_holders_only(tmp_path):
    from lanas.rundir import lock_holder, locked_runs

    run(compose_config(*FAST, "budget=20"), tmp_path / "done")  # finished: its lock file stays, unheld
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from lanas.rundir import lock_run_dir, claim_lock; lock_run_dir(sys.argv[1]); "
        "claim_lock(sys.argv[1]); print('held', flush=True); time.sleep(60)"), str(tmp_path / "busy")],
        cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert lock_holder(tmp_path / "done") is None and lock_holder(tmp_path / "busy") == str(holder.pid)
        assert locked_runs(tmp_path) == [(tmp_path / "busy", str(holder.pid))]
        listing = subprocess.run([sys.executable, "-m", "lanas.rundir", str(tmp_path)], cwd=ROOT,
                                 capture_output=True, text=True, timeout=60)
        assert listing.stdout == f"{tmp_path / 'busy'}\tPID {holder.pid}\n"
    finally:
        holder.kill()
        holder.wait()
    assert locked_runs(tmp_path) == []  # the kernel released it with the process


def test_a_killed_sweep_parent_leaves_workers_that_a_restart_does_not_collide_with(tmp_path):
    """SIGKILL a joblib sweep's parent: its loky workers go on with their jobs (orphans). The restarted
    sweep stops at the first folder they hold, naming the worker's PID, instead of writing into it."""
    from lanas.rundir import locked_runs

    sweep = tmp_path / "sweep"
    args = ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", *FAST, "budget=15625",
            "stop_at_optimum=false", "checkpoint_every=500", "seed=0,1", f"hydra.sweep.dir={sweep}"]
    parent = subprocess.Popen([sys.executable, str(ROOT / "run.py"), *args], cwd=ROOT, env=_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while not locked_runs(sweep) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert locked_runs(sweep), "no sweep job started"
        parent.kill()
        parent.wait()
        held = locked_runs(sweep)  # the orphans
        assert held and all(pid != str(parent.pid) for _, pid in held)
        before = {folder: (folder / "trace.csv").stat().st_size for folder, _ in held if (folder / "trace.csv").exists()}
        again = run_py(*args[:1], *args[1:], timeout=300)
        assert again.returncode != 0
        # one line per refused job (two workers of the restarted sweep may each meet a held folder)
        errors = [line for line in again.stderr.splitlines() if line.startswith("error: ")]
        assert 1 <= len(errors) <= 2, again.stderr[-2000:]
        held = locked_runs(sweep)  # the orphans may have started another job meanwhile
        for error in errors:
            assert any(f"{folder} is in use by another lanas process (PID {pid})" in error for folder, pid in held), error
        for folder, pid in held:  # the orphans' runs were not disturbed: their traces only grew
            trace = rows(folder / "trace.csv")
            assert [int(r["sample"]) for r in trace] == list(range(1, len(trace) + 1))
            assert (folder / "trace.csv").stat().st_size >= before.get(folder, 0)
    finally:
        try:
            os.killpg(parent.pid, signal.SIGKILL)  # the orphans kept the parent's process group
        except ProcessLookupError:
            pass


# --- 6. wandb online start-up is bounded, then offline with one warning line ------------------------------

def test_wandb_online_without_a_server_falls_back_offline_quickly(tmp_path):
    script = (
        "import sys, time\n"
        "from lanas.logging import WandbLogger\n"
        "logger = WandbLogger(init_timeout=3)\n"
        "assert logger.resolved_mode() == 'online'\n"
        "start = time.monotonic()\n"
        "logger.start({'seed': 0}, sys.argv[1], name='t')\n"
        "print(round(time.monotonic() - start, 1))\n"
        "logger.log(1, {'reward': 0.5}); logger.finish({'best_reward': 0.5})\n"
    )
    env = {**_env(), "WANDB_API_KEY": "a" * 40, "WANDB_BASE_URL": "http://127.0.0.1:9"}  # nothing listens on 9
    env.pop("WANDB_MODE")
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert float(result.stdout.strip()) < 30
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "could not start online within 3 s" in warnings[0], result.stderr
    assert "logging offline instead" in warnings[0] and not any("failed" in w for w in warnings)
    assert list((tmp_path / "wandb").glob("offline-run-*")), "no offline run"


def test_a_full_disk_while_hydra_writes_its_files_is_one_line_and_leaves_no_half_file(tmp_path):
    """RLIMIT_FSIZE stands for a full disk (writes past it fail with EFBIG), no root or tmpfs needed."""
    import resource

    def small_files() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (600, 600))

    run_dir = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "run.py"), *FAST, "budget=30", f"hydra.run.dir={run_dir}"]
    full = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120,
                          preexec_fn=small_files)
    one_error_line(full, f"cannot write {run_dir / '.hydra'}/", "File too large")
    assert [p.name for p in (run_dir / ".hydra").iterdir() if p.stat().st_size == 0] == []  # no half file
    again = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    assert {p.name for p in (run_dir / ".hydra").iterdir()} == {"config.yaml", "hydra.yaml", "overrides.yaml"}
    assert "budget=30" in (run_dir / ".hydra" / "overrides.yaml").read_text()
