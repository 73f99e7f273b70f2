"""Device slots of a host (``lrpath_core.devices``) and the ``compute`` section of the config."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from lrpath_core.config import ComputeConfig, ConfigError, ProjectConfig, load_config
from lrpath_core.devices import (
    bound_device,
    hold_devices,
    host_cores,
    host_devices,
    pick_device,
    threads_per_slot,
    torch_threads,
)


def test_compute_changes_no_training_hash_and_env_wins():
    plain = ProjectConfig()
    moved = load_config(None, **{"compute.nproc": 8, "compute.strategy": "fsdp", "compute.devices": "cuda:0"})
    assert moved.compute.nproc == 8 and moved.training_hash() == plain.training_hash()
    # the hash of a store made before `compute` existed: the dump without it hashes the same
    assert "compute" not in plain.model_dump(exclude={"compute": True})
    assert (
        plain.training_hash()
        == ProjectConfig.model_validate(plain.model_dump(exclude={"compute"})).training_hash()
    )
    env = {"LRPATH_NPROC": "2", "LRPATH_DEVICES": "cpu:0,cpu:1", "LRPATH_STRATEGY": "fsdp"}
    effective = plain.compute.effective(env)
    assert (effective.nproc, effective.devices, effective.strategy) == (2, "cpu:0,cpu:1", "fsdp")
    assert plain.compute.effective({}) == plain.compute
    with pytest.raises(ConfigError, match=r"compute\.nproc.*LRPATH_"):
        plain.compute.effective({"LRPATH_NPROC": "zero"})


def test_host_devices_default_and_refusals():
    assert host_devices(ComputeConfig(devices="cpu, cpu:1")) == ["cpu:0", "cpu:1"]
    assert threads_per_slot(["cpu:0", "cpu:1"]) == max(1, host_cores() // 2)  # slots split the cores
    if not torch.cuda.is_available():
        assert host_devices(ComputeConfig()) == ["cpu:0"]  # one slot holding every core
        assert threads_per_slot(["cpu:0"]) == host_cores()
    for bad, needle in (("gpu:0", "not a device"), ("cpu:0,cpu:0", "twice"), ("cpu:0,cuda:0", "mixes")):
        with pytest.raises(ConfigError, match=needle):
            host_devices(ComputeConfig(devices=bad))


def test_slots_exclude_threads_and_take_all_or_none(tmp_path):
    compute = ComputeConfig(devices="cpu:0,cpu:1", lock_dir=str(tmp_path))
    waits: list[list[str]] = []
    with hold_devices(compute, 1) as first:
        assert first.devices == ["cpu:0"]
        with hold_devices(compute, 1) as second:
            assert second.devices == ["cpu:1"]
        got: list[list[str]] = []
        # two slots while one is held: the thread waits (taking none) until the first is released
        waiter = threading.Thread(target=lambda: got.append(_hold(compute, 2, waits)))
        waiter.start()
        time.sleep(1.0)
        assert got == [] and waits, "a segment wanting two slots must wait while one is held"
    waiter.join(10)
    assert got == [["cpu:0", "cpu:1"]]
    with pytest.raises(ConfigError, match=r"nproc 3 needs 3 device slots.*LRPATH_DEVICES"):
        with hold_devices(compute, 3):
            pass


def _hold(compute: ComputeConfig, count: int, waits: list) -> list[str]:
    with hold_devices(compute, count, on_wait=waits.append) as lease:
        return lease.devices


def test_torch_threads_come_back_after_overlapping_holders():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with torch_threads(1):
            pass
        assert torch.get_num_threads() == 1  # the other holder still trains
    assert torch.get_num_threads() == before


def test_a_bound_slot_is_the_in_process_device():
    with bound_device("cpu:1"):
        assert pick_device("auto", 0) == torch.device("cpu")
    assert pick_device("cpu", 0) == torch.device("cpu")
