import pytest

from lrpath_core.config import ConfigError, ProjectConfig, load_config


def test_defaults_match_the_paper_reconstruction():
    cfg = ProjectConfig()
    assert cfg.paradigm.alpha == 0.18 and cfg.paradigm.decay == "cosine"


@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"paradigm.alpha": 1.2}, "paradigm.alpha"),
        ({"paradigm.decay": "exp"}, "paradigm.decay"),
        ({"optimizer.lr_min": 0.5, "optimizer.lr_max": 0.1}, "lr_min"),
        ({"model.preset": "huge"}, "unknown model preset 'huge'"),
        ({"optimizer.batch_size": 0}, "optimizer.batch_size"),
        ({"optimizer.typo": 1}, "optimizer.typo"),
    ],
)
def test_wrong_values_name_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        load_config(None, **overrides)


def test_yaml_file_and_overrides(tmp_path):
    path = tmp_path / "lrpath.yaml"
    path.write_text("store: s3://bucket/x\nparadigm:\n  alpha: 0.25\n")
    cfg = load_config(path, **{"optimizer.seed": 7})
    assert cfg.store == "s3://bucket/x" and cfg.paradigm.alpha == 0.25 and cfg.optimizer.seed == 7
    assert cfg.training_hash() != ProjectConfig().training_hash()
    assert (
        cfg.training_hash()
        == load_config(path, **{"optimizer.seed": 7, "store": "/elsewhere"}).training_hash()
    )


def test_missing_or_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(bad)
