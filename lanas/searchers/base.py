"""The ask/tell interface every searcher implements (the shape of Optuna's and Syne Tune's)."""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
from threadpoolctl import ThreadpoolController

from lanas.errors import ConfigError
from lanas.searchers.taken import TakenSet
from lanas.spaces.base import Arch, FiniteSearchSpace, SearchSpace


_Method = TypeVar("_Method", bound=Callable[..., Any])
_blas_controller: ThreadpoolController | None = None


def one_blas_thread(method: _Method) -> _Method:
    """Run ``method`` with numpy's BLAS limited to one thread.

    A searcher's matrices are small or tall-and-thin (a pool times a few dozen features): extra BLAS
    threads only add synchronisation, and on a busy machine oversubscribe it. Measured with
    ``perf.lanas_loop_speed --quick`` on 2 cores: 423,624-pool search 7.3 s -> 3.2 s, NB201
    5.5 -> 0.44 ms/sample. Entering the limit costs about 10 microseconds.
    """

    @functools.wraps(method)
    def limited(*args: Any, **kwargs: Any) -> Any:
        global _blas_controller
        if _blas_controller is None:
            _blas_controller = ThreadpoolController()
        with _blas_controller.limit(limits=1, user_api="blas"):
            return method(*args, **kwargs)

    return limited  # type: ignore[return-value]


class Searcher(ABC):
    """Decides what to evaluate next. It never evaluates anything itself.

    Constructors only validate their parameters (no work in ``__init__``); all randomness comes
    from the ``rng`` handed in, so the same seed gives the same sequence of proposals. Every
    architecture proposed or told goes into :attr:`taken`, which searchers consult so that no
    sample is ever spent twice on the same architecture.
    """

    name: str = "searcher"

    def __init__(self, space: SearchSpace, rng: np.random.Generator) -> None:
        self.space = space
        self.rng = rng
        self.archs: list[Arch] = []
        self.rewards: list[float] = []
        self._taken: TakenSet | None = None

    @property
    def taken(self) -> TakenSet:
        """Architectures evaluated or proposed so far (built on first use: a pool mask can be large)."""
        if self._taken is None:
            self._taken = TakenSet(self.space)
        return self._taken

    @abstractmethod
    def ask(self, n: int = 1) -> list[Arch]:
        """Propose ``n`` architectures not evaluated before."""

    def tell(self, archs: Sequence[Arch], rewards: Sequence[float]) -> None:
        """Record the rewards of evaluated architectures."""
        if len(archs) != len(rewards):
            raise ValueError(f"tell got {len(archs)} architectures but {len(rewards)} rewards")
        self.archs.extend(archs)
        self.rewards.extend(float(r) for r in rewards)
        self.taken.take(archs)

    @property
    def num_told(self) -> int:
        return len(self.rewards)

    def warm_start(self, runs: Sequence[tuple[Sequence[Arch], Sequence[float]]]) -> None:
        """Learn from the samples (architectures, rewards) of earlier runs over the same space before the first
        proposal (the top-level ``warm_start`` key), one pair per run. NotImplementedError: this searcher cannot."""
        raise NotImplementedError(f"{type(self).__name__} cannot learn from earlier runs")

    def min_budget(self) -> int:
        """Fewest samples for which this searcher's configuration makes sense."""
        return 1

    def stats(self) -> dict[str, Any]:
        """Searcher-specific figures worth logging (cheap to compute)."""
        return {}

    def _require_finite(self) -> FiniteSearchSpace:
        if not isinstance(self.space, FiniteSearchSpace):
            raise ConfigError(
                f"searcher={self.name} needs a search space that can be enumerated; "
                f"search_space={self.space.name} cannot"
            )
        return self.space
