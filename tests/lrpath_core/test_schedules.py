import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrpath_core.schedules import (
    LRPath,
    branch_lr,
    cpt_lr,
    decay_lr,
    infinite_lr,
    lr_scheduler,
    main_lr,
    ptfs_lr,
    wsd_s_lr,
)

SHAPES = ["cosine", "linear", "1-sqrt", "multi-step"]
lrs = st.tuples(st.floats(1e-5, 1.0), st.floats(0.0, 1.0)).map(lambda t: (max(t), min(t)))


@given(lr=lrs, warmup=st.integers(0, 500), step=st.integers(0, 100_000))
def test_main_path_is_exactly_lr_max_after_warmup(lr, warmup, step):
    lr_max, _ = lr
    value = main_lr(step, lr_max, warmup)
    if step >= warmup:
        assert value == lr_max
    else:
        assert 0 < value <= lr_max
        assert value == pytest.approx(lr_max * (step + 1) / warmup)


@given(lr=lrs, fork=st.integers(0, 10_000), length=st.integers(2, 3000), shape=st.sampled_from(SHAPES))
@settings(max_examples=60)
def test_branch_starts_at_lr_max_decays_monotonically_and_ends_at_lr_min(lr, fork, length, shape):
    lr_max, lr_min = lr
    values = [branch_lr(s, fork, length, lr_max, lr_min, shape) for s in range(fork, fork + length)]
    assert len(values) == length
    if shape == "multi-step":  # DeepSeek's two levels, floored at η_min: never η_max
        assert values[0] == max(lr_min, 0.316 * lr_max)
        assert values[-1] == max(lr_min, 0.1 * lr_max)
    else:
        assert values[0] == lr_max
        assert values[-1] == lr_min
    assert all(b <= a for a, b in zip(values, values[1:], strict=False))
    assert all(lr_min <= v <= lr_max for v in values)


@given(lr=lrs, warmup=st.integers(0, 50), extra=st.integers(2, 2000))
@settings(max_examples=60)
def test_ptfs_warms_up_then_cosine_to_lr_min(lr, warmup, extra):
    lr_max, lr_min = lr
    total = warmup + extra
    values = [ptfs_lr(s, total, lr_max, lr_min, warmup) for s in range(total)]
    for s in range(warmup):
        assert values[s] == pytest.approx(lr_max * (s + 1) / warmup)
    assert values[warmup] == lr_max
    assert values[-1] == lr_min
    for k, v in enumerate(values[warmup:]):
        p = k / (extra - 1)
        assert v == pytest.approx(lr_min + (lr_max - lr_min) * 0.5 * (1 + math.cos(math.pi * p)), abs=1e-12)


@given(lr=lrs, warmup=st.integers(1, 50), extra=st.integers(2, 2000), start=st.integers(0, 10_000))
@settings(max_examples=60)
def test_cpt_rewarms_from_lr_min_then_decays_over_delta_steps(lr, warmup, extra, start):
    lr_max, lr_min = lr
    delta = warmup + extra
    values = [cpt_lr(s, start, delta, lr_max, lr_min, warmup) for s in range(start, start + delta)]
    assert values[0] == pytest.approx(lr_min + (lr_max - lr_min) / warmup)
    assert values[warmup - 1] == pytest.approx(lr_max)
    assert values[warmup] == lr_max
    assert values[-1] == lr_min
    assert all(b <= a for a, b in zip(values[warmup:], values[warmup + 1 :], strict=False))


def test_decay_shapes_differ_in_the_middle_as_defined():
    mid = {shape: decay_lr(50, 101, 1.0, 0.0, shape) for shape in SHAPES}
    assert mid["cosine"] == pytest.approx(0.5)
    assert mid["linear"] == pytest.approx(0.5)
    assert mid["1-sqrt"] == pytest.approx(1 - math.sqrt(0.5))
    assert mid["multi-step"] == pytest.approx(0.1)  # step 50 of 101: the second half
    assert decay_lr(49, 101, 1.0, 0.0, "multi-step") == pytest.approx(0.316)
    with pytest.raises(ValueError, match="unknown decay shape"):
        decay_lr(1, 10, 1.0, 0.0, "exponential")


def test_lr_path_serializes_and_matches_the_functions():
    path = LRPath(kind="branch", lr_max=3e-3, lr_min=3e-4, start_step=820, length=180, shape="1-sqrt")
    again = LRPath.model_validate_json(path.model_dump_json())
    assert again == path
    assert [again(s) for s in range(820, 1000)] == [
        branch_lr(s, 820, 180, 3e-3, 3e-4, "1-sqrt") for s in range(820, 1000)
    ]


def test_torch_scheduler_drives_the_optimizer_lr_from_a_global_step():
    param = torch.nn.Parameter(torch.zeros(2))
    opt = torch.optim.AdamW([param], lr=123.0)
    path = LRPath(kind="branch", lr_max=1e-2, lr_min=1e-3, start_step=40, length=10)
    sched = lr_scheduler(opt, path.lr, start_step=40)
    seen = []
    for _ in range(10):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([path.lr(s) for s in range(40, 50)])
    assert seen[0] == 1e-2 and seen[-1] == pytest.approx(1e-3)


@pytest.mark.parametrize("length", [1, 2, 7, 10])
def test_multi_step_is_half_at_31_6_percent_half_at_10_percent_and_never_lr_max(length):
    values = [decay_lr(k, length, 1.0, 0.05, "multi-step") for k in range(length)]
    assert values == [0.316] * (length // 2) + [0.1] * (length - length // 2)
    # the floor: η_min above a level replaces it
    assert [decay_lr(k, 4, 1.0, 0.2, "multi-step") for k in range(4)] == [0.316, 0.316, 0.2, 0.2]


def test_wsd_s_warms_up_holds_lr_max_then_decays_at_the_end_of_each_version():
    # version 1: warm-up from 0 over 4 steps, η_max, a 5-step cosine decay ending at η_min
    first = [wsd_s_lr(s, 0, 20, 1.0, 0.1, 4, 5) for s in range(20)]
    assert first[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert first[4:15] == [1.0] * 11
    assert first[15:] == [decay_lr(k, 5, 1.0, 0.1) for k in range(5)] and first[-1] == 0.1
    # version 2 continues from the decayed model: re-warm from η_min, not from 0
    second = [wsd_s_lr(s, 20, 10, 1.0, 0.1, 4, 3, "linear") for s in range(20, 30)]
    assert second[0] == pytest.approx(0.1 + 0.9 / 4) and second[3] == 1.0
    assert second[4:7] == [1.0] * 3 and second[7:] == pytest.approx([1.0, 0.55, 0.1])
    path = LRPath(
        kind="wsd_s",
        lr_max=1.0,
        lr_min=0.1,
        warmup_steps=4,
        start_step=20,
        length=10,
        decay_steps=3,
        shape="linear",
    )
    assert [path(s) for s in range(20, 30)] == second
    with pytest.raises(ValueError, match="decay_steps"):
        LRPath(kind="wsd_s", lr_max=1.0, lr_min=0.1, start_step=0, length=10)


def test_infinite_warms_up_cools_down_to_the_plateau_and_stays_there():
    values = [infinite_lr(s, 1.0, 0.4, 2, 5) for s in range(12)]
    assert values[:2] == [0.5, 1.0]
    assert values[2:7] == [decay_lr(k, 5, 1.0, 0.4) for k in range(5)]
    assert values[2] == 1.0 and values[6] == 0.4
    assert values[7:] == [0.4] * 5
    assert infinite_lr(10_000_000, 1.0, 0.4, 2, 5) == 0.4
    path = LRPath(kind="infinite", lr_max=1.0, lr_min=0.1, warmup_steps=2, plateau_lr=0.4, cooldown_steps=5)
    assert [path(s) for s in range(12)] == values
    with pytest.raises(ValueError, match="plateau_lr"):
        LRPath(kind="infinite", lr_max=1.0, lr_min=0.1)
