"""The option schema: typed, misspellings refused with a suggestion, overrides applied."""

from __future__ import annotations

import pytest
import yaml

from engine.options import Options, dump_options, load_options, parse_override
from utils.errors import UserInputError

BASE = {
    "name": "unit",
    "task": "pansharpening",
    "data": {"scale": 2047, "train": "train.h5"},
    "model": {"name": "RAMSF"},
    "train": {"iterations": 10, "optimizer": {"lr": "3e-4"}},
}


def write(tmp_path, tree) -> str:
    path = tmp_path / "opt.yml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def test_defaults_and_types(tmp_path):
    options = load_options(write(tmp_path, BASE))
    assert isinstance(options, Options)
    assert options.train.optimizer.lr == pytest.approx(3e-4)  # '3e-4' is a string in YAML 1.1
    assert options.train.loss[0].name == "L1" and options.train.loss[0].weight == 1.0
    assert options.data.scale == 2047.0 and isinstance(options.data.scale, float)
    assert options.test.dim_cut == 21


def test_unknown_key_suggests_the_closest(tmp_path):
    tree = {**BASE, "train": {"iterations": 10, "bacth_size": 8}}
    with pytest.raises(
        UserInputError, match=r"unknown option 'train.bacth_size' \(did you mean 'batch_size'\?\)"
    ):
        load_options(write(tmp_path, tree))


def test_wrong_type_names_the_key(tmp_path):
    tree = {**BASE, "train": {"iterations": "many"}}
    with pytest.raises(UserInputError, match=r"option 'train.iterations' must be int or null"):
        load_options(write(tmp_path, tree))


def test_bad_choice_lists_the_allowed_values(tmp_path):
    tree = {**BASE, "task": "pansharpen"}
    with pytest.raises(UserInputError, match=r"'pansharpening'"):
        load_options(write(tmp_path, tree))


def test_epochs_and_iterations_are_exclusive(tmp_path):
    tree = {**BASE, "train": {"iterations": 10, "epochs": 2}}
    with pytest.raises(UserInputError, match="exactly one"):
        load_options(write(tmp_path, tree))


@pytest.mark.parametrize(
    ("train", "message"),
    [
        ({"epochs": 0}, r"option 'train.epochs' is 0: it must be at least 1"),
        ({"iterations": -3}, r"option 'train.iterations' is -3: it must be at least 1"),
        ({"iterations": 10, "grad_clip": 0}, r"option 'train.grad_clip' is 0.0: give a positive"),
        ({"iterations": 10, "grad_clip": -1.0}, r"option 'train.grad_clip' is -1.0: give a positive"),
    ],
)
def test_training_length_and_gradient_clip_are_checked(tmp_path, train, message):
    """epochs: 0 was a TypeError, and a zero or negative grad_clip silently zeroed or flipped
    every gradient (clip_grad_norm_ scales by max_norm / norm)."""
    with pytest.raises(UserInputError, match=message):
        load_options(write(tmp_path, {**BASE, "train": train}))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sensor": "WV9"}, r"option 'data.sensor': unknown sensor 'WV9'"),
        ({"type": "Foo"}, r"option 'data.type': unknown dataset 'Foo'; known: FusionH5Dataset"),
        ({"max_valid_samples": 0}, r"option 'data.max_valid_samples' is 0: give 1 or more"),
    ],
)
def test_data_options_name_the_key(tmp_path, data, message):
    with pytest.raises(UserInputError, match=message):
        load_options(write(tmp_path, {**BASE, "data": {**BASE["data"], **data}}))
    with pytest.raises(UserInputError, match=r"option 'train.patch_size' is 0: give 1 or more"):
        load_options(write(tmp_path, {**BASE, "train": {"iterations": 3, "patch_size": 0}}))


def test_overrides(tmp_path):
    options = load_options(
        write(tmp_path, BASE), ["train.optimizer.lr=1e-4", "train.batch_size=4", "model.width=16"]
    )
    assert options.train.optimizer.lr == pytest.approx(1e-4)
    assert options.train.batch_size == 4
    assert options.model == {"name": "RAMSF", "width": 16}
    with pytest.raises(UserInputError, match="KEY=VALUE"):
        parse_override("train.lr")


def test_dump_round_trip(tmp_path):
    options = load_options(write(tmp_path, BASE))
    again = load_options(write(tmp_path, yaml.safe_load(dump_options(options))))
    assert again == options


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        load_options(tmp_path / "nope.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(UserInputError, match="not valid YAML"):
        load_options(bad)


def test_bad_override_and_ranges_are_user_errors(tmp_path):
    path = write(tmp_path, BASE)
    with pytest.raises(UserInputError, match="not valid YAML"):
        load_options(path, ["train.loss=[1,"])
    for override, key in [
        ("val.every=0", "val.every"),
        ("test.batch_size=0", "test.batch_size"),
        ("train.optimizer.lr=-1", "train.optimizer.lr"),
        ("train.loss=[]", "train.loss"),
        ("train.iterations=0", "train.iterations"),
        ("data.sensor=WV33", "sensor"),
        ("data.rgb_bands=[1,2]", "data.rgb_bands"),
    ]:
        with pytest.raises(UserInputError, match=key):
            load_options(path, [override])
