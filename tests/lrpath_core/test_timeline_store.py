"""The configuration a store's timeline keeps, and what a later run's ``--config`` may change."""

from __future__ import annotations

import pytest

from lrpath_core.config import ConfigError, ProjectConfig
from lrpath_core.storage import Store
from lrpath_core.timeline_store import save_config, store_config


def _started(tmp_path) -> Store:
    store = Store(str(tmp_path / "store"))
    first = store_config(store, ProjectConfig.model_validate({"optimizer": {"lr_max": 2e-3}}))
    save_config(store, first)
    return store


def test_new_store_takes_the_given_config(tmp_path):
    store = Store(str(tmp_path / "store"))
    config = store_config(store, ProjectConfig.model_validate({"optimizer": {"lr_max": 2e-3}}))
    assert config.optimizer.lr_max == 2e-3 and config.store == store.url


def test_existing_store_refuses_other_training_settings(tmp_path):
    store = _started(tmp_path)
    with pytest.raises(ConfigError, match=r"optimizer\.lr_max.*drop --config"):
        store_config(store, ProjectConfig.model_validate({"optimizer": {"lr_max": 1e-3}}))


def test_run_time_settings_of_the_given_config_win(tmp_path):
    """``compute`` is the worker's hardware, not the timeline's: ``--config`` with ``nproc: 2`` on an
    existing store trains with two processes (it was silently the saved ``nproc: 1`` before)."""
    store = _started(tmp_path)
    given = ProjectConfig.model_validate(
        {
            "optimizer": {"lr_max": 2e-3},
            "compute": {"nproc": 2, "strategy": "fsdp"},
            "checkpoint_every": 7,
            "data": {"max_shard_bytes": 1234},
        }
    )
    config = store_config(store, given)
    assert config.compute.nproc == 2 and config.compute.strategy == "fsdp"
    assert config.checkpoint_every == 7 and config.data.max_shard_bytes == 1234
    assert config.optimizer.lr_max == 2e-3 and config.training_hash() == store_config(store).training_hash()
    assert store_config(store).compute.nproc == 1  # the saved file is unchanged
