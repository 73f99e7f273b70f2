from __future__ import annotations

import numpy as np
import pytest

from lrpath_core.block_stream import BlockStream, BlockStreamError
from lrpath_core.errors import LrpathError


def _labelled(version: int, n: int, seq: int = 4) -> np.ndarray:
    """Blocks whose tokens all equal ``version * 1000 + block index``: a batch row says where it came from."""
    return np.repeat((version * 1000 + np.arange(n))[:, None], seq, axis=1).astype(np.int32)


def _rows(batch: np.ndarray) -> list[int]:
    return batch[:, 0].tolist()


def test_stream_steps_and_within_version_order() -> None:
    versions = [_labelled(1, 37), _labelled(2, 20), _labelled(3, 45)]
    stream = BlockStream(versions, batch_size=8, seed=0)
    assert stream.steps_per_version == [4, 2, 5]
    assert stream.cumulative_steps == [4, 6, 11] and stream.total_steps == len(stream) == 11
    start = 0
    for i, end in enumerate(stream.cumulative_steps, start=1):
        assert stream.step_range(i) == (start, end)
        seen = []
        for step in range(start, end):
            batch = stream.batch(step)
            assert batch.dtype == np.int64 and batch.shape == (8, 4)
            assert {r // 1000 for r in _rows(batch)} == {i}
            assert stream.version_of_step(step) == i
            seen += _rows(batch)
        assert len(seen) == len(set(seen)) == (end - start) * 8, "a version's kept blocks are each used once"
        start = end
    first = [_rows(stream.batch(s)) for s in range(4)]
    assert sum(first, []) != sorted(sum(first, [])), "blocks are shuffled"
    with pytest.raises(IndexError, match="step 11 is outside the data stream: it has 11 steps"):
        stream.batch(11)
    with pytest.raises(IndexError):
        stream.batch(-1)


def test_stream_is_deterministic_and_stable_when_versions_are_added() -> None:
    v1, v2 = _labelled(1, 50), _labelled(2, 30)
    a = BlockStream([v1, v2], batch_size=4, seed=3)
    b = BlockStream([v1, v2], batch_size=4, seed=3)
    c = BlockStream([v1, v2], batch_size=4, seed=4)
    assert all(np.array_equal(a.batch(s), b.batch(s)) for s in range(a.total_steps))
    assert any(not np.array_equal(a.batch(s), c.batch(s)) for s in range(a.total_steps))
    only_v1 = BlockStream([v1], batch_size=4, seed=3)
    assert all(np.array_equal(only_v1.batch(s), a.batch(s)) for s in range(only_v1.total_steps))


def test_global_order_uses_the_same_blocks_mixed_together() -> None:
    versions = [_labelled(1, 33), _labelled(2, 26), _labelled(3, 40)]
    within = BlockStream(versions, batch_size=5, seed=1)
    mixed = BlockStream(versions, batch_size=5, seed=1, order="global")
    assert mixed.steps_per_version == within.steps_per_version and mixed.total_steps == within.total_steps
    within_rows = sum((_rows(b) for b in within), [])
    mixed_rows = sum((_rows(b) for b in mixed), [])
    assert sorted(within_rows) == sorted(mixed_rows) and within_rows != mixed_rows
    assert any(len({r // 1000 for r in _rows(mixed.batch(s))}) > 1 for s in range(mixed.total_steps))
    again = BlockStream(versions, batch_size=5, seed=1, order="global")
    assert all(np.array_equal(mixed.batch(s), again.batch(s)) for s in range(mixed.total_steps))


def test_stream_refuses_a_version_smaller_than_a_batch() -> None:
    with pytest.raises(BlockStreamError, match="version 2 has 3 training blocks, fewer than batch_size 4"):
        BlockStream([_labelled(1, 10), _labelled(2, 3)], batch_size=4, seed=0)
    with pytest.raises(BlockStreamError, match="one seq_len") as info:
        BlockStream([_labelled(1, 10, seq=4), _labelled(2, 10, seq=8)], batch_size=4, seed=0)
    assert isinstance(info.value, LrpathError), "a user-data problem, printed as one line by the CLI"
