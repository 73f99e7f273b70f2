import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lrpath_core.schedules import LRPath, branch_lr, cpt_lr, decay_lr, lr_scheduler, main_lr, ptfs_lr

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
    assert mid["multi-step"] == pytest.approx(0.316)
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
