"""What every command-line entry point does first: clean stops from the first moment, one-line
errors, a sane number of CPU threads, and no third-party noise that says nothing to our users.

This module imports only the standard library at the top, so an entry point can call
:func:`install_stop_handlers` before its heavy imports (torch, Lightning, wandb).
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from lanas.errors import LanasError

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class EarlyStop(KeyboardInterrupt):
    """SIGINT/SIGTERM before the search loop took over signal handling (imports, set-up, tracker start)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum


last_stop_signal: int | None = None  # the latest SIGINT/SIGTERM our handler saw (libraries may swallow the exception)


def _raise_early_stop(signum: int, frame: Any) -> None:
    global last_stop_signal
    last_stop_signal = signum
    raise EarlyStop(signum)


def install_stop_handlers() -> None:
    """From now on SIGINT and SIGTERM raise :class:`EarlyStop`, which the entry point turns into one
    line and exit 130 / 143. Without this, SIGTERM kills the process with no summary, and SIGINT
    prints a long traceback from wherever it landed (often inside an import or ``wandb.init``).
    The search loop installs its own handler (stop after the current sample) while it runs."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _raise_early_stop)


@contextmanager
def starting(entry_point: bool) -> Iterator[None]:
    """Around an entry point's heavy imports: when run as the program (``entry_point``), stop
    handlers first and third-party noise off, and a stop meanwhile ends with one line; when imported
    (tests, other modules) nothing changes and an interrupt propagates."""
    if entry_point:
        install_stop_handlers()
    try:
        if entry_point:
            quiet_third_party()  # inside the try: a stop may land here already
        yield
    except KeyboardInterrupt as err:
        if not entry_point:
            raise
        interrupted_exit(err, "while starting; nothing written")


def _exit_on_second_stop(signum: int, frame: Any) -> None:
    if getattr(_exit_on_second_stop, "seen", False):
        os._exit(128 + signum)  # asked twice: the user wants out now, even mid tear-down
    _exit_on_second_stop.seen = True  # type: ignore[attr-defined]


def settle_stop_handlers() -> None:
    """The work is done and reported: a stop during the tear-down (wandb's at-exit flush) no longer
    turns a finished run into exit 130; a second stop still exits at once."""
    for sig in STOP_SIGNALS:
        signal.signal(sig, _exit_on_second_stop)


def stop_signal(err: BaseException) -> int:
    """The signal number behind a KeyboardInterrupt (SIGINT when it came from Python's default handler)."""
    return getattr(err, "signum", signal.SIGINT)


def interrupted_exit(err: BaseException, what: str) -> None:
    """One line on stderr and the shell's exit code for the signal (130 SIGINT, 143 SIGTERM)."""
    signum = stop_signal(err)
    print(f"interrupted: stopped by {signal.Signals(signum).name} {what}", file=sys.stderr, flush=True)
    sys.exit(128 + signum)


def quiet_third_party() -> None:
    """Silence messages of libraries we use that tell our users nothing actionable.

    Each filter names one exact message, so every other warning still shows.
    """
    # torch 2.14 deprecates LeafSpec; Lightning 2.6.6 still uses it internally (nothing a user can change).
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
    # Lightning's advertisement for its cloud logger, printed by every Trainer.
    # Also its "Detected KeyboardInterrupt, attempting graceful shutdown": our own line says it.
    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(
        lambda record: not any(text in record.getMessage() for text in ("litlogger", "Detected KeyboardInterrupt")))
    # Lightning's "[rank: 0] Received SIGTERM": the entry point reports the stop in its own line.
    logging.getLogger("lightning.pytorch.trainer.connectors.signal_connector").addFilter(
        lambda record: "Received SIGTERM" not in record.getMessage())
    # wandb's banner and its run-summary block (Lightning's WandbLogger starts wandb with default
    # settings); results are in our own files and lines. A user's own WANDB_SILENT wins.
    os.environ.setdefault("WANDB_SILENT", "true")


def torch_threads(threads: int | None = None) -> int:
    """How many CPU threads torch should use: ``threads`` if set, else ``$OMP_NUM_THREADS`` if set,
    else the usable cores, at most 4.

    torch's default (every core) is a bad choice on a shared machine: its OpenMP threads spin while
    waiting for each other, and the small tensors of smoke runs gain nothing from them (issue 13, on
    this project's 2-core machine under load 3-6: supernet smoke 1,139 s with the default, 45 s with
    one thread). Beyond 4 threads the small CPU workloads we run gain little.
    """
    if threads is not None:
        value = int(threads)
        if value < 1:
            from lanas.errors import ConfigError

            raise ConfigError(f"threads must be >= 1 (or null for automatic), got {threads!r}")
        return value
    env = os.environ.get("OMP_NUM_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, 4))


def apply_torch_threads(threads: int | None = None) -> int:
    """Set torch's intra-op thread count (see :func:`torch_threads`) and return it."""
    import torch

    count = torch_threads(threads)
    torch.set_num_threads(count)
    return count


def one_line_error(err: BaseException) -> str:
    """A Hydra/OmegaConf composition error as one line naming the key and what is allowed."""
    from hydra.errors import MissingConfigException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    if isinstance(err, MissingConfigException) and err.missing_cfg_file and err.options:
        group, _, option = err.missing_cfg_file.rpartition("/")
        return (f"{group}={option}: could not find '{err.missing_cfg_file}'. "
                f"Available options in '{group}': {', '.join(err.options)}")
    if isinstance(err, OverrideParseException):
        first = str(err).splitlines()[0]
        hint = ""
        if "=~" in err.override:  # sh and zsh leave a ~ after '=' as it is; Hydra's grammar refuses it
            hint = "; write $HOME instead of ~ (not expanded after '=' by sh and zsh)"
        return (f"cannot parse the override {err.override!r} ({first}){hint}; "
                "see https://hydra.cc/docs/advanced/override_grammar/basic/")
    cause = err.__cause__
    if isinstance(cause, OmegaConfBaseException) and getattr(cause, "full_key", None) and "not in struct" in str(cause):
        parent = cause.parent_node
        allowed = sorted(k for k in parent.keys() if not str(k).startswith("_") and k != "hydra") if parent else []
        return f"{cause.full_key} is not a config key; allowed here: {', '.join(map(str, allowed))}"
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("Config search path", "provider="))]
    if isinstance(cause, OmegaConfBaseException):
        lines += [str(cause).splitlines()[0]]
    return " ".join(lines) or type(err).__name__


MAX_ERROR_LINE = 300


def error_line(message: object, limit: int = MAX_ERROR_LINE) -> str:
    """``error: <message>`` on one line of at most ``limit`` characters (whitespace runs collapsed; a
    longer message keeps its start and its end, where our messages say what to do)."""
    text = "error: " + " ".join(str(message).split())
    if len(text) <= limit:
        return text
    head = limit * 2 // 3
    return f"{text[:head]} ... {text[-(limit - head - 5):]}"


def os_error_message(err: OSError) -> str:
    """An OSError (disk full, read-only or missing folder) as what could not be done, and where."""
    where = f" {err.filename}" if err.filename else ""
    return f"cannot write{where}: {err.strerror or err}; free space or fix the permissions, then run the same command again"


def run_hydra_main(main: Callable[[], Any]) -> None:
    """Run a ``@hydra.main`` function with one-line errors (``HYDRA_FULL_ERROR=1``: Hydra's own output)."""
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        main()
        return
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let errors reach us instead of Hydra's printer
    try:
        main()
    except (HydraException, OmegaConfBaseException) as err:
        print(error_line(one_line_error(err)), file=sys.stderr)
        sys.exit(2)
    except LanasError as err:
        print(error_line(err), file=sys.stderr)
        sys.exit(2)
    except OSError as err:  # Hydra's own files (.hydra/, run.log) on a full disk or a read-only folder
        print(error_line(os_error_message(err)), file=sys.stderr)
        sys.exit(2)
