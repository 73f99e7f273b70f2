"""SegmentSpec / SegmentResult: the contract between the flows and the trainer."""

import pytest
from pydantic import ValidationError

from lrpath_core.config import ProjectConfig
from lrpath_core.errors import LrpathError
from lrpath_core.schedules import LRPath
from lrpath_core.segment import DataSpec, SegmentError, SegmentSpec


def spec(**kw) -> SegmentSpec:
    cfg = ProjectConfig()
    fields = {
        "run": "checkpoints/main",
        "start_step": 0,
        "end_step": 10,
        "lr_path": LRPath(kind="main", lr_max=cfg.optimizer.lr_max, lr_min=cfg.optimizer.lr_min),
        "checkpoint_every": cfg.checkpoint_every,
        "data": DataSpec(versions=[1], batch_size=cfg.optimizer.batch_size),
        "model": cfg.model,
        "optimizer": cfg.optimizer,
        "vocab_size": cfg.data.vocab_size,
    }
    return SegmentSpec(**{**fields, **kw})


def test_a_spec_round_trips_through_json():
    original = spec(save_at=[4, 10], init="checkpoints/main/step-00000000")
    assert SegmentSpec.model_validate_json(original.model_dump_json()) == original


def test_checkpoint_every_has_no_default_of_its_own():
    """Defaults live in ProjectConfig: a caller that forgets to pass it is refused, not silently given 50."""
    fields = spec().model_dump()
    del fields["checkpoint_every"]
    with pytest.raises(ValidationError, match="checkpoint_every"):
        SegmentSpec.model_validate(fields)
    with pytest.raises(ValidationError, match="checkpoint_every"):
        spec(checkpoint_every=0)


@pytest.mark.parametrize(
    "kw,message",
    [
        ({"start_step": 10, "end_step": 10}, r"end_step \(10\) must be after start_step \(10\)"),
        ({"save_at": [0, 11]}, r"save_at steps \[0, 11\] are outside \(0, 10\]"),
    ],
)
def test_inconsistent_steps_are_refused(kw, message):
    with pytest.raises(ValidationError, match=message):
        spec(**kw)


def test_segment_error_is_a_user_error():
    assert issubclass(SegmentError, LrpathError)
