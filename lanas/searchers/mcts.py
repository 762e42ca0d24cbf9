"""Monte Carlo tree search over the space's hand-designed action space (the paper's RQ1 control).

The tree's actions are the fixed decisions of the space (``space.decisions()``; for NAS-Bench-201:
the op of edge 1, then edge 2, ...). A node is a prefix of decisions; its statistics are the number
and mean reward of the evaluated architectures that start with that prefix, so they are exactly
what UCT back-propagation accumulates along the path of every sample.

Everything else is as in LaNAS (``lanas/searchers/lanas.py``), so that the difference between the
two is the learned partition: ``init_samples`` uniform random samples first; then, from the root,
the child with the larger ``x_bar + 2 * Cp * sqrt(2 * ln(n_parent) / n)`` (unvisited children
first, ties at random), down to the first unvisited node (the expansion), whose partial
architecture is completed uniformly at random among the *unevaluated* architectures below it. The
reward is back-propagated to every prefix of the evaluated architecture. Children with nothing left
to evaluate below them are never selected.

On an enumerable space the pool is sorted by its decision rows (mixed radix), so the architectures
below a prefix are one contiguous slice of it; on other spaces completion samples the remaining
decisions and rejects architectures already taken, ``max_completion_tries`` times, before the
prefix is marked exhausted.

Several workers (``workers > 1``): an architecture proposed and not yet told counts as a visit of
each of its prefixes with the worst reward so far (virtual loss, as in parallel MCTS, Chaslot et
al. 2008): the next selection sees that path as more visited and less rewarding, and a node being
expanded by one worker counts as visited for the next. The pending visits are kept apart and
removed when the reward arrives, so a sequential search selects exactly as without them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lanas.errors import ConfigError, require_float, require_int
from lanas.searchers.base import Searcher
from lanas.searchers.tree import MAX_CP, argmax_random_tie, ucb
from lanas.spaces.base import Arch, FiniteSearchSpace, SearchSpace

Prefix = tuple[int, ...]


class FixedActionMCTS(Searcher):
    """UCT over a fixed decision sequence with random completion; see the module docstring."""

    name = "mcts"

    def __init__(
        self,
        space: SearchSpace,
        rng: np.random.Generator,
        Cp: float = 0.1,
        init_samples: int = 10,
        max_completion_tries: int = 1000,
    ) -> None:
        super().__init__(space, rng)
        self.Cp = require_float("searcher.Cp", Cp, 0.0, MAX_CP)
        self.init_samples = require_int("searcher.init_samples", init_samples, 1)
        self.max_completion_tries = require_int("searcher.max_completion_tries", max_completion_tries, 1)
        choices = space.decisions()
        if not choices:
            raise ConfigError(
                f"searcher=mcts needs a search space with a fixed decision sequence (decisions()); "
                f"search_space={space.name} has none"
            )
        self.choices = [int(c) for c in choices]
        # span[k]: number of decision rows below a prefix of length k (mixed radix, last step fastest)
        self._span = np.cumprod([1, *self.choices[::-1]])[::-1].astype(np.int64)
        self.n: dict[Prefix, int] = {}
        self.total: dict[Prefix, float] = {}
        self._sorted: np.ndarray | None = None  # finite: pool positions in decision order
        self._exhausted: set[Prefix] = set()  # infinite: prefixes where completion failed
        self._free_count: dict[Prefix, int] = {}  # finite: unevaluated archs below a prefix (lazy)
        self._pending: dict[Prefix, int] = {}  # pending visits per prefix (virtual loss)

    # ------------------------------------------------------------------ public interface
    def min_budget(self) -> int:
        return self.init_samples

    def ask(self, n: int = 1) -> list[Arch]:
        self._index_pool()
        proposals = []
        for _ in range(n):
            if self.num_told < self.init_samples:
                arch = self._draw_below(())
            else:
                arch = None
                while arch is None:
                    path = self.select()
                    if path is None:
                        break  # nothing left below the root
                    arch = self._draw_below(path[-1])
            if arch is None:
                break
            self._take(arch)
            self._add_pending(arch, 1)
            proposals.append(arch)
        return proposals

    def tell(self, archs: Sequence[Arch], rewards: Sequence[float]) -> None:
        super().tell(archs, rewards)
        self._index_pool()
        rows = self.space.to_decisions(list(archs))
        pending = self._pending_visits()
        for arch, row, reward in zip(archs, rows, rewards):
            self._take(arch)
            row = tuple(int(c) for c in row)
            if pending.get(row, 0) > 0:  # it was proposed here: its virtual visits end
                for k in range(len(row) + 1):
                    pending[row[:k]] -= 1
                    if not pending[row[:k]]:
                        del pending[row[:k]]
            self.backpropagate(row, float(reward))

    def _pending_visits(self) -> dict[Prefix, int]:
        if getattr(self, "_pending", None) is None:  # a searcher pickled before pending was tracked
            self._pending = {}
        return self._pending

    def _add_pending(self, arch: Arch, count: int) -> None:
        row = tuple(int(c) for c in self.space.to_decisions([arch])[0])
        pending = self._pending_visits()
        for k in range(len(row) + 1):
            pending[row[:k]] = pending.get(row[:k], 0) + count

    # ------------------------------------------------------------------ tree
    def backpropagate(self, row: Prefix, reward: float) -> None:
        """Add ``reward`` to every prefix of the decision row, root included."""
        for k in range(len(row) + 1):
            prefix = row[:k]
            self.n[prefix] = self.n.get(prefix, 0) + 1
            self.total[prefix] = self.total.get(prefix, 0.0) + reward

    def x_bar(self, prefix: Prefix) -> float:
        return self.total[prefix] / self.n[prefix]

    def uct(self, parent: Prefix, children: list[Prefix]) -> np.ndarray:
        """UCT scores of ``children`` (inf for unvisited ones): LaNAS's rule, :func:`~lanas.searchers.tree.ucb`.

        Pending visits count at the worst reward so far (virtual loss; none pending: the plain rule)."""
        pending = self._pending_visits()
        if not pending:
            n = np.array([self.n.get(child, 0) for child in children])
            x_bar = np.array([self.total[child] / self.n[child] if self.n.get(child) else 0.0 for child in children])
            return ucb(x_bar, n, self.n.get(parent, 0), self.Cp)
        worst = min(self.rewards) if self.rewards else 0.0
        v = np.array([pending.get(child, 0) for child in children])
        n = np.array([self.n.get(child, 0) for child in children]) + v
        total = np.array([self.total.get(child, 0.0) for child in children]) + v * worst
        x_bar = np.where(n > 0, total / np.maximum(n, 1), 0.0)
        return ucb(x_bar, n, self.n.get(parent, 0) + pending.get(parent, 0), self.Cp)

    def select(self) -> list[Prefix] | None:
        """Path from the root to the first unvisited node (or a full architecture), by UCT.

        Only children with unevaluated architectures below them compete. None when the root has
        nothing left.
        """
        node: Prefix = ()
        if not self._has_free(node):
            return None
        path = [node]
        pending = self._pending_visits()
        while len(node) < len(self.choices) and self.n.get(node, 0) + pending.get(node, 0) > 0:
            kids = [(*node, c) for c in range(self.choices[len(node)])]
            kids = [kid for kid in kids if self._has_free(kid)]
            if not kids:
                break  # only on spaces that cannot be enumerated: completion below ``node`` decides
            node = kids[argmax_random_tie(self.uct(node, kids), self.rng)]
            path.append(node)
        return path

    # ------------------------------------------------------------------ the architectures below a prefix
    def _index_pool(self) -> None:
        if self._sorted is not None or not isinstance(self.space, FiniteSearchSpace):
            return
        rows = self.space.to_decisions(self.space.enumerate())
        keys = rows.astype(np.int64) @ self._span[1:]
        order = np.argsort(keys, kind="stable")
        self._sorted = order
        self._keys = keys[order]
        self._rank = np.empty_like(order)
        self._rank[order] = np.arange(len(order))
        self._free = np.ones(len(order), dtype=bool)  # in decision order
        self._free[self._rank[np.flatnonzero(self.taken.mask.taken)]] = False

    def _slice(self, prefix: Prefix) -> slice:
        k = len(prefix)
        lo_key = int(np.dot(prefix, self._span[1 : k + 1])) if k else 0
        lo, hi = np.searchsorted(self._keys, [lo_key, lo_key + self._span[k]])
        return slice(int(lo), int(hi))

    def _has_free(self, prefix: Prefix) -> bool:
        if self._sorted is not None:
            # Counted once per prefix, then kept up to date by _take: O(1) per UCT step.
            if prefix not in self._free_count:
                self._free_count[prefix] = int(np.count_nonzero(self._free[self._slice(prefix)]))
            return self._free_count[prefix] > 0
        return prefix not in self._exhausted

    def _draw_below(self, prefix: Prefix) -> Arch | None:
        """A uniformly random unevaluated architecture whose decisions start with ``prefix``."""
        if self._sorted is not None:
            part = self._slice(prefix)
            free = np.flatnonzero(self._free[part])
            if len(free) == 0:
                return None
            return int(self._sorted[part.start + free[self.rng.integers(len(free))]])
        k = len(prefix)
        for _ in range(self.max_completion_tries):
            rest = [int(self.rng.integers(c)) for c in self.choices[k:]]
            arch = self.space.from_decisions(np.array([[*prefix, *rest]]))[0]
            if arch is not None and arch not in self.taken:  # None: outside the constraints
                return arch
        self._exhausted.add(prefix)
        return None

    def _take(self, arch: Arch) -> None:
        self.taken.take([arch])
        if self._sorted is not None and self._free[self._rank[int(arch)]]:
            self._free[self._rank[int(arch)]] = False
            row = tuple(int(c) for c in self.space.to_decisions([arch])[0])
            for k in range(len(row) + 1):
                if row[:k] in self._free_count:
                    self._free_count[row[:k]] -= 1

    def stats(self) -> dict[str, Any]:
        return {"nodes": len(self.n)}
