"""CPT with replay (Ibrahim et al. 2024): each update's training blocks mix in earlier versions' blocks.

The mix is made once per version in the CPT-with-replay store's own copy of the data: version
i > 1's ``train.npy`` keeps ``n_i − k`` of its own blocks and takes ``k = round(f·n_i)`` blocks
drawn from the training blocks of versions 1..i−1, both picked by ``default_rng((seed, i,
REPLAY_STREAM))``. It keeps ``n_i`` blocks, so ΔT_i (and the cost) is CPT's; the training stream
(:class:`lrpath_core.block_stream.BlockStream`) then shuffles them like any version's, so replay
is spread over the update's batches. Validation data is untouched. ``data/v{i}/replay.json``,
written after the mixed ``train.npy``, marks a finished mix.
"""

from __future__ import annotations

import io

import numpy as np

from lrpath_core import layout
from lrpath_core.packing import load_blocks
from lrpath_core.storage import Store

REPLAY_STREAM = 7
"""Third word of the replay mix's RNG seed, so it draws apart from the stream's own permutations."""


def replay_mix(versions: list[np.ndarray], fraction: float, seed: int) -> tuple[np.ndarray, int]:
    """Version ``len(versions)``'s training blocks with ``fraction`` of them replaced by earlier
    versions' blocks; returns the mix and how many blocks were replayed."""
    *earlier, new = versions
    n = int(new.shape[0])
    k = min(n, round(fraction * n)) if earlier else 0
    if k == 0:
        return new, 0
    rng = np.random.default_rng((seed, len(versions), REPLAY_STREAM))
    pool = np.concatenate(earlier)
    kept = np.sort(rng.permutation(n)[: n - k])
    replayed = rng.choice(pool.shape[0], size=k, replace=pool.shape[0] < k)
    return np.concatenate([new[kept], pool[replayed]]), k


def mix_replay(source: Store, store: Store, versions: int, fraction: float, seed: int) -> None:
    """Write the mixed ``train.npy`` of versions 2..``versions`` into ``store`` (a copy of
    ``source``'s data), each once: the mixes are drawn from ``source``'s unmixed blocks."""
    blocks = [load_blocks(source, v, "train") for v in range(1, versions + 1)]
    for version in range(2, versions + 1):
        record = layout.replay_record(version)
        wanted = {"fraction": fraction, "seed": seed}
        if store.exists(record) and {k: store.read_json(record).get(k) for k in wanted} == wanted:
            continue
        mixed, replayed = replay_mix(blocks[:version], fraction, seed)
        buffer = io.BytesIO()
        np.save(buffer, mixed, allow_pickle=False)
        store.write_bytes(layout.data_blocks(version, "train"), buffer.getvalue())
        store.write_json(record, {**wanted, "blocks": int(mixed.shape[0]), "replayed": replayed})
