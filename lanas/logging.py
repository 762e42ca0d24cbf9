"""Experiment trackers behind one small interface. Local results never depend on them.

Every tracker call is guarded: a tracker that fails (no account, no network, a crash inside the
library) is reported once on stderr and switched off, and the run goes on.
"""

from __future__ import annotations

import csv
import netrc
import os
import sys
from pathlib import Path
from typing import Any

from lanas.rundir import METRICS, read_overrides, temporary_beside


class RunLogger:
    """Does nothing; the base of the real loggers."""

    def start(self, config: dict[str, Any], out_dir: Path, name: str, group: str | None = None,
              tags: list[str] | None = None, resume_step: int = 0) -> None:
        """``resume_step`` > 0: the run resumes after that many samples (steps up to it were logged before)."""

    def log(self, step: int, metrics: dict[str, float]) -> None:
        pass

    def finish(self, summary: dict[str, Any]) -> None:
        pass


class NullLogger(RunLogger):
    """``logger=none``."""


class CsvLogger(RunLogger):
    """``logger=csv``: metrics against the number of samples in ``metrics.csv``."""

    def start(self, config, out_dir, name, group=None, tags=None, resume_step=0) -> None:
        path = Path(out_dir) / METRICS
        self._writer: csv.DictWriter | None = None
        kept: list[dict[str, str]] = []
        if resume_step > 0 and path.exists():
            # Keep the rows up to the checkpoint; the ones after it are logged again as they are redone.
            with open(path, newline="") as handle:
                kept = [row for row in csv.DictReader(handle) if int(row["samples"]) <= resume_step]
        if kept:
            fd, tmp = temporary_beside(path)
            with os.fdopen(fd, "w", newline="") as handle:
                writer = csv.DictWriter(handle, fieldnames=list(kept[0]))
                writer.writeheader()
                writer.writerows(kept)
            os.replace(tmp, path)  # a crash now leaves the old file or the cut one, never neither
            self._handle = open(path, "a", newline="")
            self._writer = csv.DictWriter(self._handle, fieldnames=list(kept[0]))
        else:
            self._handle = open(path, "w", newline="")

    def log(self, step: int, metrics: dict[str, float]) -> None:
        row = {"samples": step, **metrics}
        if self._writer is None:
            self._writer = csv.DictWriter(self._handle, fieldnames=list(row))
            self._writer.writeheader()
        self._writer.writerow(row)
        self._handle.flush()  # like trace.csv: rows survive a crash, so a resume can keep them

    def finish(self, summary: dict[str, Any]) -> None:
        self._handle.close()


def wandb_has_credentials() -> bool:
    """Whether the user configured wandb for online use (API key in env or in ~/.netrc)."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbLogger(RunLogger):
    """``logger=wandb``: offline unless the user configured wandb (``WANDB_MODE`` or credentials).

    Offline runs land in ``<run dir>/wandb`` and can be uploaded later with ``wandb sync``.
    """

    def __init__(self, project: str = "lanas", entity: str | None = None, mode: str | None = None,
                 log_every: int = 1, init_timeout: float = 10.0) -> None:
        self.project = project
        self.entity = entity
        self.mode = mode
        self.log_every = max(1, int(log_every))
        self.init_timeout = float(init_timeout)
        self._run = None

    def _fail(self, what: str, err: BaseException) -> None:
        print(f"warning: wandb {what} failed ({type(err).__name__}: {err}); "
              "continuing without wandb, local results are unaffected", file=sys.stderr)
        self._run = None

    def resolved_mode(self) -> str:
        if self.mode:
            return self.mode
        if os.environ.get("WANDB_MODE"):
            return os.environ["WANDB_MODE"]
        return "online" if wandb_has_credentials() else "offline"

    @staticmethod
    def run_labels(config: dict[str, Any], out_dir: Path, group: str | None = None,
                   tags: list[str] | None = None) -> tuple[str | None, str | None, list[str]]:
        """wandb group, job type and tags of a run: grouped by experiment (``experiment_name`` of a preset)
        and searcher, tagged with the values this run's sweep set (from ``<run dir>/.hydra/overrides.yaml``),
        so the wandb UI can filter and group a study the way the report does."""
        experiment = config.get("experiment_name")
        searcher = (config.get("searcher") or {}).get("name")
        labels = list(tags or [])
        if experiment:
            labels.append(str(experiment))
        labels += [f"{key}={value}" for key, value in read_overrides(Path(out_dir)).items()
                   if key not in ("experiment", "searcher")]
        # wandb rejects tags longer than 64 characters; keep order, drop repeats.
        labels = list(dict.fromkeys(tag[:64] for tag in labels))
        return (str(experiment) if experiment else group), searcher, labels

    def start(self, config, out_dir, name, group=None, tags=None, resume_step=0) -> None:
        # A resumed run is a new wandb run (tagged "resumed"); trace.csv holds the whole history.
        tags = [*(tags or []), "resumed"] if resume_step else tags
        try:
            import wandb

            group, job_type, tags = self.run_labels(config, Path(out_dir), group, tags)
            mode = self.resolved_mode()

            def init(mode: str) -> Any:
                # Online start-up is bounded (issue 14: 93 s of silence per job without a network).
                timeouts = {"init_timeout": self.init_timeout, "login_timeout": self.init_timeout}
                return wandb.init(
                    project=self.project, entity=self.entity, mode=mode, dir=str(out_dir),
                    name=name, group=group, job_type=job_type, tags=tags, config=config, reinit="finish_previous",
                    settings=wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                            **(timeouts if mode == "online" else {})),
                )

            try:
                self._run = init(mode)
            except Exception as err:  # noqa: BLE001
                if mode != "online":
                    raise
                reason = " ".join(f"{type(err).__name__}: {err}".split())[:120]
                print(f"warning: wandb could not start online within {self.init_timeout:g} s ({reason}); "
                      f"logging offline instead (upload later: wandb sync {out_dir}/wandb/offline-run-*)",
                      file=sys.stderr, flush=True)
                self._run = init("offline")
            self._run.define_metric("samples")
            self._run.define_metric("*", step_metric="samples")
        except Exception as err:  # noqa: BLE001 - any tracker failure must not stop the search
            self._fail("init", err)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        if self._run is None or step % self.log_every:
            return
        try:
            self._run.log({"samples": step, **metrics})
        except Exception as err:  # noqa: BLE001
            self._fail("log", err)

    def finish(self, summary: dict[str, Any]) -> None:
        if self._run is None:
            return
        try:
            for key, value in summary.items():
                if isinstance(value, (int, float, str)) or value is None:
                    self._run.summary[key] = value
            for key, value in (summary.get("searcher_params") or {}).items():
                self._run.summary[f"searcher.{key}"] = value  # filterable beside the swept tags
            self._run.finish()
        except Exception as err:  # noqa: BLE001
            self._fail("finish", err)


class SafeLogger(RunLogger):
    """Any tracker behind a guard: its first failure is reported once, then it is switched off.

    Local files are written before the tracker is called, so a tracker can never lose results.
    """

    def __init__(self, inner: RunLogger) -> None:
        self.inner: RunLogger | None = inner

    def _call(self, method: str, *args: Any, **kwargs: Any) -> None:
        if self.inner is None:
            return
        try:
            getattr(self.inner, method)(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - a tracker must never stop the search
            print(f"warning: logger {type(self.inner).__name__}.{method} failed ({type(err).__name__}: {err}); "
                  "continuing without it, local results are unaffected", file=sys.stderr)
            self.inner = None

    def start(self, *args: Any, **kwargs: Any) -> None:
        self._call("start", *args, **kwargs)

    def log(self, step: int, metrics: dict[str, float]) -> None:
        self._call("log", step, metrics)

    def finish(self, summary: dict[str, Any]) -> None:
        self._call("finish", summary)
