"""The deterministic training stream: which blocks fill each optimizer step.

The stream's position is the optimizer step alone, so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import numpy as np

from lrpath_core.errors import LrpathError


class BlockStreamError(LrpathError):
    """The versions' blocks cannot fill a stream (a version smaller than a batch, mixed seq_len)."""


class BlockStream:
    """Batches for every optimizer step, fixed by ``seed`` and the versions' blocks alone.

    Version ``i`` (1-based) permutes its blocks with ``default_rng((seed, i))`` and keeps the first
    ``(n_i // batch_size) * batch_size``; ``steps_per_version[i-1]`` is ΔT_i. ``within_version``
    order plays the versions one after another (version i fills steps ``S_{i-1} .. S_i - 1``), and
    a version's batches do not depend on which versions follow it. ``global`` order shuffles the
    same kept blocks together with ``default_rng((seed, 0))`` (PTFS).
    """

    def __init__(
        self,
        versions: list[np.ndarray],
        batch_size: int,
        seed: int,
        order: Literal["within_version", "global"] = "within_version",
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if order not in ("within_version", "global"):
            raise ValueError(f"order must be 'within_version' or 'global', got {order!r}")
        if not versions:
            raise ValueError("BlockStream needs at least one version")
        seq_lens = {v.shape[1] if v.ndim == 2 else None for v in versions}
        if len(seq_lens) != 1 or None in seq_lens:
            raise BlockStreamError(
                f"every version must be a 2-D (blocks, seq_len) array of one seq_len; got {seq_lens}"
            )
        self.versions = versions
        self.batch_size = batch_size
        self.seed = seed
        self.order = order
        self.seq_len = int(versions[0].shape[1])
        self.steps_per_version: list[int] = []
        sources, rows = [], []
        for i, blocks in enumerate(versions, start=1):
            n = int(blocks.shape[0])
            if n < batch_size:
                raise BlockStreamError(
                    f"version {i} has {n} training blocks, fewer than batch_size {batch_size}: "
                    f"add data to version {i} or lower the batch size"
                )
            steps = n // batch_size
            kept = np.random.default_rng((seed, i)).permutation(n)[: steps * batch_size]
            self.steps_per_version.append(steps)
            sources.append(np.full(kept.size, i - 1, dtype=np.int32))
            rows.append(kept)
        self._source = np.concatenate(sources)
        self._row = np.concatenate(rows)
        if order == "global":
            shuffle = np.random.default_rng((seed, 0)).permutation(self._row.size)
            self._source, self._row = self._source[shuffle], self._row[shuffle]
        self.cumulative_steps: list[int] = np.cumsum(self.steps_per_version).tolist()
        self.total_steps: int = self.cumulative_steps[-1]

    def __len__(self) -> int:
        return self.total_steps

    def version_of_step(self, step: int) -> int:
        """1-based version whose data fills ``step`` in ``within_version`` order."""
        self._check(step)
        return int(np.searchsorted(self.cumulative_steps, step, side="right")) + 1

    def step_range(self, version: int) -> tuple[int, int]:
        """``(S_{i-1}, S_i)``: the steps version ``i`` fills in ``within_version`` order."""
        if not 1 <= version <= len(self.versions):
            raise IndexError(f"version {version} is not in this stream (1..{len(self.versions)})")
        end = self.cumulative_steps[version - 1]
        return end - self.steps_per_version[version - 1], end

    def batch(self, step: int) -> np.ndarray:
        """The ``(batch_size, seq_len)`` int64 batch of optimizer step ``step``."""
        self._check(step)
        span = slice(step * self.batch_size, (step + 1) * self.batch_size)
        source, row = self._source[span], self._row[span]
        out = np.empty((self.batch_size, self.seq_len), dtype=np.int64)
        for v in np.unique(source):
            mask = source == v
            out[mask] = self.versions[int(v)][row[mask]]
        return out

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.batch(s) for s in range(self.total_steps))

    def _check(self, step: int) -> None:
        if not 0 <= step < self.total_steps:
            raise IndexError(
                f"step {step} is outside the data stream: it has {self.total_steps} steps "
                f"(0..{self.total_steps - 1}) for {len(self.versions)} version(s); "
                f"ingest the next version to go further"
            )
