"""How LaNAS draws a new architecture inside the region the tree selected.

``PoolProposal`` (spaces that can be enumerated)
    every pool candidate is routed once per refit and the free ones are grouped by leaf, so an
    in-leaf uniform draw is O(1); an empty leaf hands over to ``leaf_fallback``.
``RegionProposal`` (spaces that cannot be enumerated, e.g. ``nasnet``)
    uniform batches routed through the tree, a candidate kept only when it satisfies **every**
    split on the path (the reference code accepts as soon as any one holds, which samples outside
    the region); then a mutation walk from the region's best samples; then the nearest non-empty
    ancestor region.
``LocalMoves`` (lanas_plus)
    with probability ``prob``, instead of a uniform draw, a move from one of the leaf's best
    samples that stays inside the leaf: the nearest free candidate (``nearest``) or a mutation
    (``mutate``), as LA-MCTS runs a local optimiser inside its leaves.

Each takes the tree, the space, the searcher's generator and its :class:`~lanas.searchers.taken.TakenSet`
as arguments: proposals own no randomness and no record of what was evaluated.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from lanas.searchers.taken import TakenSet
from lanas.searchers.tree import PartitionTree
from lanas.spaces.base import Arch, FiniteSearchSpace, SearchSpace

FALLBACKS = ("first_nonempty", "random")
REGION_PROPOSALS = ("rejection", "rejection+mutation")
LOCAL_MOVES = ("nearest", "mutate")


class PoolProposal:
    """Uniform draws among a leaf's free pool candidates; see the module docstring."""

    def __init__(self, leaf_fallback: str = "first_nonempty") -> None:
        self.leaf_fallback = leaf_fallback
        self.num_fallbacks = 0

    def draw_uniform(self, space: SearchSpace, rng: np.random.Generator, taken: TakenSet) -> Arch | None:
        return taken.mask.draw(rng)

    def index(self, tree: PartitionTree, space: FiniteSearchSpace, taken: TakenSet, rng: np.random.Generator) -> None:
        """Route the whole pool and group the free candidates by leaf: one segment of ``members`` per leaf.

        Draws swap the drawn entry to the end of its segment's live part, so a draw costs O(1)
        instead of a scan of the pool; entries taken by other means are dropped when drawn.
        """
        self.leaf_of = tree.route(space.features())
        self.first_leaf = tree.num_internal
        free = np.flatnonzero(~taken.mask.taken)
        leaf_index = (self.leaf_of[free] - tree.num_internal).astype(np.int16)  # int16: radix sort
        order = np.argsort(leaf_index, kind="stable")
        self.members = free[order]
        counts = np.bincount(leaf_index, minlength=len(tree.leaves))
        self.seg_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.seg_live = counts.copy()

    def leaf(self, arch: Arch, tree: PartitionTree, space: SearchSpace) -> int:
        return int(self.leaf_of[int(arch)])

    def selectable(self, tree: PartitionTree) -> None:
        """Every node may be selected: an empty leaf hands over to ``leaf_fallback`` (the paper's rule)."""
        return None

    def live_members(self, leaf: int, taken: TakenSet) -> np.ndarray:
        """Free candidates of ``leaf``."""
        k = leaf - self.first_leaf
        start = int(self.seg_start[k])
        members = self.members[start : start + int(self.seg_live[k])]
        return members[~taken.mask.taken[members]]

    def draw(self, leaf: int, rng: np.random.Generator, taken: TakenSet) -> int | None:
        """A uniform free candidate of ``leaf``, or None when it has none left."""
        k = leaf - self.first_leaf
        start = int(self.seg_start[k])
        while self.seg_live[k] > 0:
            live = int(self.seg_live[k])
            j = start + int(rng.integers(live))
            last = start + live - 1
            arch = int(self.members[j])
            self.members[j], self.members[last] = self.members[last], arch
            self.seg_live[k] -= 1
            if not taken.mask.taken[arch]:
                return arch
        return None

    def propose(self, tree: PartitionTree, path: list[int], space: SearchSpace, rng: np.random.Generator,
                taken: TakenSet, archs: Sequence[Arch], rewards: Sequence[float]) -> tuple[Arch, int]:
        leaf = path[-1]
        arch = self.draw(leaf, rng, taken)
        if arch is None:
            return self.fallback(rng, taken)
        return arch, leaf

    def fallback(self, rng: np.random.Generator, taken: TakenSet) -> tuple[int, int]:
        """The chosen leaf has no free candidate left: draw from another leaf.

        ``first_nonempty`` (the reference code) takes the first leaf, in good-to-bad order, that
        still has candidates; ``random`` draws uniformly among all remaining candidates.
        """
        self.num_fallbacks += 1
        if self.leaf_fallback == "first_nonempty":
            for leaf in range(self.first_leaf, self.first_leaf + len(self.seg_live)):
                arch = self.draw(leaf, rng, taken)
                if arch is not None:
                    return arch, leaf
        arch = taken.mask.draw(rng)
        return arch, int(self.leaf_of[arch])

    def free_per_leaf(self) -> np.ndarray:
        """Free candidates per leaf as indexed (draws keep it current; other takes are dropped lazily)."""
        return self.seg_live

    def stats(self) -> dict[str, Any]:
        return {"fallbacks": self.num_fallbacks}


class RegionProposal:
    """Rejection sampling inside the selected region, then a mutation walk; see the module docstring."""

    def __init__(self, candidate_batch: int = 1000, max_tries: int = 20, proposal: str = "rejection+mutation",
                 mutation_seeds: int = 8, mutation_tries: int = 50) -> None:
        self.candidate_batch = candidate_batch
        self.max_tries = max_tries
        self.mutate = proposal == "rejection+mutation"
        self.mutation_seeds = mutation_seeds
        self.mutation_tries = mutation_tries
        self.num_fallbacks = 0
        self.num_drawn = 0  # uniform in-leaf candidates drawn
        self.num_accepted = 0  # ... of which satisfied every split on the path
        self.num_mutation_proposals = 0

    def index(self, tree: PartitionTree, space: SearchSpace, taken: TakenSet, rng: np.random.Generator) -> None:
        """Probe which regions exist: route ``candidate_batch * max_tries`` uniform candidates.

        A node fitted on one sample, or on tied rewards (a supernet scored on a few hundred images
        gives accuracies in steps), has a constant regressor that sends every point to its good
        child: the bad child's region is empty, yet never visited, so UCB would pick it at every ask
        and every proposal would be a fallback. A leaf that none of the probes reaches is as many
        draws as rejection sampling would spend before giving up; selection skips it.
        """
        _, X = draw_batch(space, rng, self.candidate_batch * self.max_tries)
        self.probe_hits = np.bincount(tree.route(X) - tree.num_internal, minlength=len(tree.leaves))

    def selectable(self, tree: PartitionTree) -> np.ndarray:
        """Nodes with at least one probe in their region."""
        return tree.subtree_sums(self.probe_hits) > 0

    def leaf(self, arch: Arch, tree: PartitionTree, space: SearchSpace) -> int:
        return int(tree.route(space.encode([arch]))[0])

    def draw_uniform(self, space: SearchSpace, rng: np.random.Generator, taken: TakenSet) -> Arch:
        """A uniform architecture not evaluated or proposed before (bounded tries)."""
        for _ in range(self.max_tries):
            archs, _ = draw_batch(space, rng, 1)
            arch = as_arch(archs, 0)
            if arch not in taken:
                return arch
        return arch  # a repeat is astronomically unlikely in a space that cannot be enumerated

    def propose(self, tree: PartitionTree, path: list[int], space: SearchSpace, rng: np.random.Generator,
                taken: TakenSet, archs: Sequence[Arch], rewards: Sequence[float]) -> tuple[Arch, int]:
        """A new architecture satisfying every split on ``path``, or the nearest region's."""
        leaf = path[-1]
        for _ in range(self.max_tries):
            batch, X = draw_batch(space, rng, self.candidate_batch)
            inside = np.flatnonzero(tree.route(X) == leaf)
            self.num_drawn += len(X)
            self.num_accepted += len(inside)
            arch = first_new(batch, inside, taken)
            if arch is not None:
                return arch, leaf
        if self.mutate:
            arch = self._mutation_walk(tree, path, space, rng, taken, archs, rewards)
            if arch is not None:
                self.num_mutation_proposals += 1
                return arch, leaf
        return self._nearest_region(tree, path, space, rng, taken)

    def _nearest_region(self, tree: PartitionTree, path: list[int], space: SearchSpace,
                        rng: np.random.Generator, taken: TakenSet) -> tuple[Arch, int]:
        """No candidate found in the leaf's region (it may be empty, e.g. below a node fitted on one
        sample): propose one that follows ``path`` for as many levels as possible, i.e. from the
        deepest non-empty ancestor region seen in a batch; its leaf is where it routes."""
        self.num_fallbacks += 1
        batch, X = draw_batch(space, rng, self.candidate_batch)
        depth = tree.shared_depth(tree.route(X), path)
        order = np.lexsort((rng.random(len(X)), -depth))
        arch = first_new(batch, order, taken)
        if arch is None:
            arch = self.draw_uniform(space, rng, taken)
        return arch, self.leaf(arch, tree, space)

    def _mutation_walk(self, tree: PartitionTree, path: list[int], space: SearchSpace, rng: np.random.Generator,
                       taken: TakenSet, archs: Sequence[Arch], rewards: Sequence[float]) -> Arch | None:
        """Mutations from the region's best samples; the first new child inside the region wins."""
        leaf = path[-1]
        violation = tree.violation(space.encode(archs), path)
        # Seeds: the best samples inside the region; when it holds none, the ones closest to it.
        order = np.lexsort((-np.asarray(rewards), violation))[: self.mutation_seeds]
        seeds = [archs[i] for i in order]
        parents = np.asarray(seeds, dtype=np.int64) if hasattr(space, "mutate_array") else seeds
        for _ in range(self.mutation_tries):
            pick = rng.integers(len(parents), size=self.candidate_batch)
            kids, X = mutate_batch(space, rng, take_rows(parents, pick))
            arch = first_new(kids, np.flatnonzero(tree.route(X) == leaf), taken)
            if arch is not None:
                return arch
            # No child inside yet: walk on from the children that break the splits least.
            parents = take_rows(kids, np.argsort(tree.violation(X, path), kind="stable")[: self.mutation_seeds])
        return None

    def stats(self) -> dict[str, Any]:
        return {
            "fallbacks": self.num_fallbacks,
            "acceptance_rate": self.num_accepted / self.num_drawn if self.num_drawn else None,
            "candidates_drawn": self.num_drawn,
            "mutation_proposals": self.num_mutation_proposals,
        }


class LocalMoves:
    """lanas_plus's in-leaf local search around the leaf's best samples; see the module docstring.

    ``nearest`` on a pool takes the leaf's free candidate closest (L1 on encodings) to one of its
    ``top`` best samples, ties at random, none farther than ``radius`` (2 = one op changed in a
    one-hot encoding): a best sample whose neighbourhood is used up hands over to a uniform draw
    instead of grinding ever farther away. Where there is no pool, ``nearest`` takes the closest of
    ``tries`` mutants inside the leaf. ``mutate`` applies up to ``steps`` mutations, ``tries`` times,
    until the mutant is new and in the leaf.
    """

    def __init__(self, prob: float = 0.0, move: str = "nearest", top: int = 1, steps: int = 1,
                 tries: int = 20, radius: float = 2.0) -> None:
        self.prob, self.move, self.top, self.steps, self.tries, self.radius = prob, move, top, steps, tries, radius
        self.num_local = 0

    def propose(self, tree: PartitionTree, leaf: int, proposal: PoolProposal | RegionProposal, space: SearchSpace,
                rng: np.random.Generator, taken: TakenSet, archs: Sequence[Arch],
                rewards: Sequence[float]) -> Arch | None:
        """A local move inside ``leaf`` with probability ``prob`` (None: draw as usual)."""
        if self.prob == 0 or rng.random() >= self.prob:
            return None
        arch = self.move_in_leaf(tree, leaf, proposal, space, rng, taken, archs, rewards)
        if arch is not None:
            self.num_local += 1
        return arch

    def move_in_leaf(self, tree: PartitionTree, leaf: int, proposal: PoolProposal | RegionProposal,
                     space: SearchSpace, rng: np.random.Generator, taken: TakenSet, archs: Sequence[Arch],
                     rewards: Sequence[float]) -> Arch | None:
        """A new architecture in ``leaf`` near one of its best samples, or None when there is none."""
        top = self._leaf_top(tree, leaf, proposal, space, archs, rewards)
        if len(top) == 0:
            return None
        if self.move == "nearest" and isinstance(proposal, PoolProposal):
            return self._nearest_in_pool(leaf, top, proposal, space, rng, taken)
        return self._mutant(tree, leaf, top, proposal, space, rng, taken)

    def _leaf_top(self, tree: PartitionTree, leaf: int, proposal: PoolProposal | RegionProposal,
                  space: SearchSpace, archs: Sequence[Arch], rewards: Sequence[float]) -> list[Arch]:
        """The ``top`` best evaluated samples the tree routes to ``leaf``."""
        if isinstance(proposal, PoolProposal):
            leaves = proposal.leaf_of[np.asarray(archs, dtype=np.int64)]
        else:
            leaves = tree.route(space.encode(archs))
        inside = np.flatnonzero(leaves == leaf)
        best = inside[np.argsort(-np.asarray(rewards)[inside], kind="stable")[: self.top]]
        return [archs[i] for i in best]

    def _nearest_in_pool(self, leaf: int, top: list[Arch], proposal: PoolProposal, space: FiniteSearchSpace,
                         rng: np.random.Generator, taken: TakenSet) -> int | None:
        members = proposal.live_members(leaf, taken)
        if len(members) == 0:
            return None
        features = space.features()
        parent = features[int(top[rng.integers(len(top))])]
        distance = np.abs(features[members] - parent).sum(axis=1)
        if distance.min() > self.radius:
            return None
        closest = np.flatnonzero(distance == distance.min())
        return int(members[closest[rng.integers(len(closest))]])

    def _mutant(self, tree: PartitionTree, leaf: int, top: list[Arch], proposal: PoolProposal | RegionProposal,
                space: SearchSpace, rng: np.random.Generator, taken: TakenSet) -> Arch | None:
        nearest = self.move == "nearest"
        found: list[Arch] = []
        for _ in range(self.tries):
            parent = top[rng.integers(len(top))]
            arch = parent
            for _ in range(int(rng.integers(1, self.steps + 1))):
                arch = space.mutate(arch, rng)
            if arch not in taken and proposal.leaf(arch, tree, space) == leaf:
                if not nearest:
                    return arch
                found.append((arch, parent))
        if not found:
            return None
        distance = np.array([np.abs(space.encode([a]) - space.encode([p])).sum() for a, p in found])
        if distance.min() > self.radius:
            return None
        return found[int(np.argmin(distance))][0]

    def stats(self) -> dict[str, Any]:
        return {"local_samples": self.num_local}


def draw_batch(space: SearchSpace, rng: np.random.Generator, n: int) -> tuple[np.ndarray | list[Arch], np.ndarray]:
    """``n`` uniform candidates and their encodings (array fast path when the space has one)."""
    if hasattr(space, "sample_array"):
        archs = space.sample_array(rng, n)
        return archs, space.encode_array(archs)
    archs = space.sample(rng, n)
    return archs, space.encode(archs)


def mutate_batch(space: SearchSpace, rng: np.random.Generator,
                 parents: np.ndarray | list[Arch]) -> tuple[np.ndarray | list[Arch], np.ndarray]:
    """One mutation of each parent and the children's encodings."""
    if isinstance(parents, np.ndarray) and hasattr(space, "mutate_array"):
        kids = space.mutate_array(parents, rng)
        return kids, space.encode_array(kids)
    kids = [space.mutate(p, rng) for p in parents]
    return kids, space.encode(kids)


def as_arch(archs: np.ndarray | list[Arch], i: int) -> Arch:
    row = archs[i]
    return tuple(int(v) for v in row) if isinstance(archs, np.ndarray) else row


def take_rows(archs: np.ndarray | list[Arch], rows: np.ndarray) -> np.ndarray | list[Arch]:
    return archs[rows] if isinstance(archs, np.ndarray) else [archs[i] for i in rows]


def first_new(archs: np.ndarray | list[Arch], rows: np.ndarray, taken: TakenSet) -> Arch | None:
    """The first of ``rows`` not taken yet."""
    for i in rows:
        arch = as_arch(archs, int(i))
        if arch not in taken:
            return arch
    return None
