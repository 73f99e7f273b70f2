"""Peak memory of ingesting one large .txt shard: bounded by a read chunk, not by the file.

.venv/bin/python bench/ingest_memory.py [--gib 1] [--as-version 2] [--tmp DIR]

Writes a ``--gib`` GiB .txt shard of generated text into a temporary folder (streamed, a few MB
at a time), ingests it with ``add_version`` into a temporary local store with the default
configuration (``ProjectConfig()``: tiny preset, vocab 4096, seq_len 128), and prints the peak
resident memory (``ru_maxrss`` of this process and of its children) and the wall times.
``--as-version 2`` first ingests a small version 1 (which trains the tokenizer), so the big shard
is version 2 and the time is not spent training BPE on it.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time

import numpy as np

from lrpath_core.config import ProjectConfig
from lrpath_core.ingest import add_version
from lrpath_core.storage import Store
from lrpath_core.synthetic import synthetic_documents, write_synthetic_versions

POOL_DOCUMENTS = 20_000
WRITE_DOCUMENTS = 2_000


def peak_mib(who: int = resource.RUSAGE_SELF) -> float:
    """``ru_maxrss`` in MiB (Linux reports KiB)."""
    return resource.getrusage(who).ru_maxrss / 1024


def write_big_shard(path: str, size_bytes: int, seed: int = 0) -> int:
    """Paragraphs drawn from a pool of generated documents until ``size_bytes``; a few MB in memory.
    The words are version 1's world (the small version 1 of ``--as-version 2`` draws other documents
    from it), so the tokenizer knows them either way."""
    pool = synthetic_documents(1, POOL_DOCUMENTS, seed=seed)
    rng = np.random.default_rng(seed)
    written = 0
    with open(path, "w", encoding="utf-8") as f:
        while written < size_bytes:
            picks = rng.integers(0, len(pool), WRITE_DOCUMENTS)
            chunk = "\n\n".join(pool[i] for i in picks) + "\n\n"
            f.write(chunk)
            written += len(chunk.encode("utf-8"))
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gib", type=float, default=1.0, help="size of the generated shard in GiB")
    parser.add_argument("--as-version", type=int, choices=(1, 2), default=1)
    parser.add_argument("--tmp", default=None, help="folder for the shard and the store (default: $TMPDIR)")
    args = parser.parse_args()

    root = tempfile.mkdtemp(prefix="lrpath-ingest-memory-", dir=args.tmp)
    try:
        result = {
            "gib": args.gib,
            "as_version": args.as_version,
            "rss_after_imports_mib": round(peak_mib(), 1),
        }
        store = Store(os.path.join(root, "store"))
        config = ProjectConfig(store=store.url)
        if args.as_version == 2:
            [small] = write_synthetic_versions(os.path.join(root, "small"), 1, docs_per_version=3000)
            start = time.perf_counter()
            add_version(store, config, small, name="v1")
            result["v1_seconds"] = round(time.perf_counter() - start, 1)
        folder = os.path.join(root, "big")
        os.makedirs(folder)
        start = time.perf_counter()
        size = write_big_shard(os.path.join(folder, "big.txt"), int(args.gib * 2**30), seed=1)
        result["shard_bytes"] = size
        result["generate_seconds"] = round(time.perf_counter() - start, 1)
        result["rss_before_ingest_mib"] = round(peak_mib(), 1)
        start = time.perf_counter()
        record = add_version(store, config, folder, name="big")
        result["ingest_seconds"] = round(time.perf_counter() - start, 1)
        manifest = json.loads(
            open(os.path.join(store.url, "data", f"v{record.version}", "manifest.json")).read()
        )
        result["tokens"] = manifest["tokens"]
        result["documents"] = manifest["shards"][0]["documents"]
        result["peak_rss_mib"] = round(peak_mib(), 1)
        result["peak_rss_children_mib"] = round(peak_mib(resource.RUSAGE_CHILDREN), 1)
        print(json.dumps(result, indent=2))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
