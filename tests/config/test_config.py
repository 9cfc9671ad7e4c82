"""The run config: YAML → typed dataclasses, error messages, `--set` overrides, round trips."""

from __future__ import annotations

import dataclasses
import os
import re
import sys
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from siamese.config import (
    AugmentConfig,
    RunConfig,
    TrainConfig,
    check_config,
    load_config,
)
from siamese.config.help import describe_options
from siamese.config.loading import apply_overrides, field_types, from_dict, unwrap_optional
from siamese.config.yaml_dialect import dump_yaml, read_yaml, save_config_atomic, to_dict
from siamese.errors import ConfigError, OutputError

FULL_RECIPE = """\
seed: 7
device: cpu
data:
  name: omniglot
  split: background
  data_dir: /tmp/data
  options: {image_size: [64, 64], channels: 1}
  validation: samples
  validation_fraction: 0.25
  validation_split: evaluation
  pairs: 5000
  test_fraction: 0.25
  test_fold: 1
augment:
  preset: koch
  degrees: 10
  translate: 0.1
  scale: [0.8, 1.2]
  shear: 0.3
  crop_padding: 2
  hflip: 0.5
model:
  encoder: resnet
  options: {widths: [16, 32], depth: 2}
  embedding_dim: 128
  normalize: false
  projection: false
  output_activation: sigmoid
loss:
  name: contrastive
  margin: 0.5
  pos_margin: 0.1
  metric: cosine
batches:
  kind: pairs
  p: 8
  k: 2
  size: 64
  per_epoch: 1000
optimizer:
  name: sgd
  lr: 1e-2
  weight_decay: 0
  momentum: 0.5
  nesterov: true
  betas: [0.8, 0.99]
schedule:
  name: step
  warmup_fraction: 0.0
  min_lr_fraction: 0.01
  step_epochs: 5
  gamma: 0.5
train:
  epochs: null
  steps: 500
  grad_clip: 1.0
  precision: bf16
  log_every: 10
  validate_every: 2
  checkpoint_every: 100
  keep_checkpoints: 3
  early_stop: {metric: roc_auc, patience: 4, min_delta: 0.001}
  threads: 2
"""


def write(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def build(data: dict[str, Any]) -> RunConfig:
    return from_dict(RunConfig, data, "recipe.yaml")


# --- loading ----------------------------------------------------------------------------------


def test_defaults_load() -> None:
    assert load_config(None) == RunConfig()
    assert build({}) == RunConfig()


def test_full_recipe_sets_every_section(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_RECIPE))
    assert config.seed == 7
    assert config.data.options == {"image_size": [64, 64], "channels": 1}
    assert config.data.validation_split == "evaluation"
    assert config.augment.degrees == 10.0 and isinstance(config.augment.degrees, float)
    assert config.augment.scale == (0.8, 1.2)
    assert config.model.encoder == "resnet" and config.model.normalize is False
    assert config.loss.pos_margin == 0.1 and config.loss.metric == "cosine"
    assert config.batches.per_epoch == 1000
    assert config.optimizer.lr == pytest.approx(0.01)  # `1e-2` is a float, not YAML 1.1's string
    assert config.optimizer.weight_decay == 0.0 and isinstance(config.optimizer.weight_decay, float)
    assert config.optimizer.betas == (0.8, 0.99)
    assert config.schedule.name == "step" and config.schedule.gamma == 0.5
    assert config.train.epochs is None and config.train.steps == 500
    assert config.train.early_stop.metric == "roc_auc" and config.train.early_stop.patience == 4
    assert config.train.threads == 2
    # every option of the recipe differs from its default, so no section was skipped
    defaults = leaves(RunConfig())
    assert set(defaults) == {row[0] for row in describe_options(RunConfig)}
    # the loss section holds every loss's options: a contrastive recipe leaves the others'
    # unset, and `lr` (a loss's own parameters) and `memory` (P×K batches) do not apply to it
    unset = {k for k, v in leaves(config).items() if k.startswith("loss.") and v is None}
    assert unset >= {"loss.scale", "loss.temperature", "loss.lr", "loss.mining"}
    same = [k for k, v in leaves(config).items() if v == defaults[k] and k not in unset]
    assert same == ["loss.memory"]


def leaves(config: Any, prefix: str = "") -> dict[str, Any]:
    """Key path → value of every leaf field of a config."""
    result: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value, path = getattr(config, f.name), f"{prefix}{f.name}"
        result.update(
            leaves(value, path + ".") if dataclasses.is_dataclass(value) else {path: value}
        )
    return result


def test_empty_file_and_empty_section_are_defaults(tmp_path: Path) -> None:
    assert read_yaml(write(tmp_path, "")) == {}
    assert read_yaml(write(tmp_path, "# only a comment\n")) == {}
    assert load_config(write(tmp_path, "train:\nseed: 3\n")) == RunConfig(seed=3)


def test_floats_accept_integers_but_not_booleans() -> None:
    assert build({"loss": {"margin": 1}}).loss.margin == 1.0
    with pytest.raises(
        ConfigError, match=r"loss\.margin must be a number \(or null\), got True \(bool\)"
    ):
        build({"loss": {"margin": True}})


# --- error messages ---------------------------------------------------------------------------


def test_unknown_top_level_key_names_the_nearest() -> None:
    with pytest.raises(ConfigError) as err:
        build({"optimiser": {"lr": 0.1}})
    message = str(err.value)
    assert message.startswith("recipe.yaml: unknown key 'optimiser' — did you mean 'optimizer'?")
    assert "Valid keys under the top level: seed, device, data, augment" in message


def test_unknown_nested_key_names_the_nearest_sibling() -> None:
    with pytest.raises(ConfigError) as err:
        build({"optimizer": {"momentun": 0.9}})
    message = str(err.value)
    assert "unknown key 'optimizer.momentun' — did you mean 'optimizer.momentum'?" in message
    assert "Valid keys under optimizer: name, lr, weight_decay, momentum" in message


def test_key_of_another_section_is_pointed_there() -> None:
    with pytest.raises(
        ConfigError, match=r"unknown key 'train\.lr' — did you mean 'loss\.lr' or 'optimizer\.lr'\?"
    ):
        build({"train": {"lr": 0.1}})
    with pytest.raises(ConfigError, match=r"did you mean 'train\.early_stop\.patience'\?"):
        build({"train": {"patience": 3}})
    with pytest.raises(ConfigError, match=r"unknown key 'epochs' — did you mean 'train\.epochs'\?"):
        build({"epochs": 3})


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"train": {"epochs": "ten"}},
            "recipe.yaml: train.epochs must be an integer (or null), got 'ten' (str)",
        ),
        ({"seed": 1.5}, "recipe.yaml: seed must be an integer, got 1.5 (float)"),
        ({"seed": True}, "recipe.yaml: seed must be an integer, got True (bool)"),
        ({"optimizer": {"lr": "fast"}}, "recipe.yaml: optimizer.lr must be a number, got 'fast'"),
        ({"optimizer": {"lr": "0.1"}}, "got '0.1' (str); drop the quotes around the number"),
        ({"model": {"normalize": 1}}, "model.normalize must be true or false, got 1 (int)"),
        ({"model": {"normalize": "yes"}}, "model.normalize must be true or false, got 'yes'"),
        ({"data": {"split": 2021}}, "data.split must be a string (or null), got 2021 (int)"),
        (
            {"optimizer": {"name": "adamx"}},
            "optimizer.name must be one of 'adam', 'adamw', 'sgd', 'rmsprop', got 'adamx' (str)"
            " — did you mean 'adam'?",
        ),
        (
            {"train": {"precision": 16}},
            "train.precision must be one of 'fp32', 'bf16', 'fp16', got 16",
        ),
        (
            {"augment": {"scale": [1.0]}},
            "augment.scale must be a list of 2 numbers, got [1.0] (list of 1)",
        ),
        ({"augment": {"scale": 1.0}}, "augment.scale must be a list of 2 numbers, got 1.0"),
        ({"augment": {"scale": [1.0, "x"]}}, "augment.scale[1] must be a number, got 'x'"),
        ({"train": 5}, "recipe.yaml: train is a section: it must be a mapping of its keys"),
        ({"model": {"options": [1, 2]}}, "model.options must be a mapping (key: value)"),
        ({"model": {"options": {1: "x"}}}, "model.options has the key 1 (int); keys must be"),
        ({"model": {"embedding_dim": None}}, "model.embedding_dim must be an integer, got null"),
    ],
)
def test_wrong_type_names_key_and_expected_type(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        build(data)
    assert message in str(err.value)


def test_yaml_syntax_error_gives_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "seed: 1\ntrain:\n  epochs: [1, 2\n  steps: 3\n")
    with pytest.raises(ConfigError, match=r"recipe\.yaml, line 4, column \d+: invalid YAML \("):
        read_yaml(path)


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: 1\nseed: 2\ntrain:\n  epochs: 5\n")
    with pytest.raises(ConfigError, match=r"line 4, .*'train' is written twice .*line 1"):
        read_yaml(path)


def test_missing_file_directory_and_list(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope\.yaml does not exist; check the path"):
        read_yaml(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        read_yaml(tmp_path)
    with pytest.raises(
        ConfigError, match=r"recipe\.yaml: the top level must be a mapping .* a list"
    ):
        read_yaml(write(tmp_path, "- seed: 1\n- seed: 2\n"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        (tmp_path / "latin.yaml").write_bytes(b"name: caf\xe9\n")
        read_yaml(tmp_path / "latin.yaml")


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root reads any file; no chmod on Windows"
)
def test_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "seed: 1\n")
    path.chmod(0)
    try:
        with pytest.raises(ConfigError, match=r"cannot read config file .*permissions"):
            read_yaml(path)
    finally:
        path.chmod(0o600)


# --- overrides --------------------------------------------------------------------------------


def test_overrides_set_scalars_lists_null_and_free_form_options() -> None:
    raw = {"train": {"epochs": 3}, "model": {"options": {"depth": 2}}}
    result = apply_overrides(
        raw,
        [
            "train.epochs=null",
            "train.steps=100",
            "optimizer.lr=3e-4",
            "optimizer.name=sgd",
            "augment.scale=[0.9, 1.1]",
            "model.options.widths=[16, 32]",
            "data.options.image_size=[64,64]",
            "train.early_stop.patience=2",
            "data.name=folder:/tmp/x=y",
        ],
        RunConfig,
    )
    assert raw == {"train": {"epochs": 3}, "model": {"options": {"depth": 2}}}  # not mutated
    config = from_dict(RunConfig, result, "recipe.yaml")
    assert config.train.epochs is None and config.train.steps == 100
    assert config.optimizer.lr == pytest.approx(3e-4) and config.optimizer.name == "sgd"
    assert config.augment.scale == (0.9, 1.1)
    assert config.model.options == {"depth": 2, "widths": [16, 32]}
    assert config.data.options == {"image_size": [64, 64]}
    assert config.train.early_stop.patience == 2
    assert config.data.name == "folder:/tmp/x=y"  # only the first '=' splits


def test_override_wins_over_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: 3\n  log_every: 5\n")
    config = load_config(path, ["train.epochs=7"])
    assert config.train.epochs == 7 and config.train.log_every == 5


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "optimiser.lr=0.1",
            "--set optimiser.lr=0.1: unknown key 'optimiser' — did you mean 'optimizer.lr'?",
        ),
        (
            "train.lr=0.1",
            "--set train.lr=0.1: unknown key 'train.lr' — did you mean 'loss.lr' or 'optimizer.lr'?",
        ),
        ("train.epochs", "--set train.epochs: expected KEY=VALUE with a dotted key, e.g. --set"),
        ("train.epochs=", "--set train.epochs=: the value after '=' is empty"),
        ("train.epochs=  ", "the value after '=' is empty"),
        ("train..epochs=1", "the key 'train..epochs' has an empty part"),
        ("train.epochs=ten", "--set train.epochs=ten: train.epochs must be an integer (or null)"),
        ("train.epochs.x=1", "train.epochs is a single value, not a section with keys"),
        ("augment.scale=[1, 2", "--set augment.scale=[1, 2, line 1, column"),
    ],
)
def test_override_errors(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        apply_overrides({}, [override], RunConfig)
    assert message in str(err.value)


def test_override_into_a_scalar_in_the_file_is_an_error() -> None:
    with pytest.raises(
        ConfigError, match="cannot set a key inside train: the config has train = 3"
    ):
        apply_overrides({"train": 3}, ["train.epochs=1"], RunConfig)


# --- writing and round trips ------------------------------------------------------------------


def test_dump_is_in_field_order_and_reads_back(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, FULL_RECIPE))
    text = dump_yaml(config)
    assert list(yaml.safe_load(text)) == [f.name for f in dataclasses.fields(RunConfig)]
    assert "betas: [0.8, 0.99]" in text
    assert to_dict(config)["augment"]["scale"] == [0.8, 1.2]
    assert from_dict(RunConfig, yaml.safe_load(text), "dump") == config
    save_config_atomic(tmp_path / "config.yaml", config)
    assert load_config(tmp_path / "config.yaml") == config
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_save_into_a_missing_directory_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError, match="cannot write the config"):
        save_config_atomic(tmp_path / "missing" / "config.yaml", RunConfig())


def test_strings_that_look_like_numbers_survive_a_round_trip() -> None:
    config = RunConfig()
    config.data.split = "1e-3"
    config.data.validation_split = "2021"
    config.data.name = "null"
    config.data.data_dir = "caf\u00e9/a\x85b"  # PyYAML reads a raw NEL in quotes as a space
    assert from_dict(RunConfig, yaml.safe_load(dump_yaml(config)), "dump") == config


def values_of(tp: Any) -> st.SearchStrategy[Any]:
    """Any valid value of field type `tp`, as the dataclass stores it."""
    inner, optional = unwrap_optional(tp)
    base: st.SearchStrategy[Any]
    if dataclasses.is_dataclass(inner):
        types_ = field_types(inner)
        base = st.fixed_dictionaries({k: values_of(t) for k, t in types_.items()}).map(
            lambda kwargs, cls=inner: cls(**kwargs)
        )
    elif inner is int:
        base = st.integers(-(2**40), 2**40)
    elif inner is float:
        base = st.floats(allow_nan=False)
    elif inner is bool:
        base = st.booleans()
    elif inner is str:
        base = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
    elif get_origin(inner) is Literal:
        base = st.sampled_from(get_args(inner))
    elif get_origin(inner) is tuple:
        base = st.tuples(*(values_of(a) for a in get_args(inner)))
    else:  # dict[str, Any]: YAML-like values
        leaf = st.none() | st.booleans() | st.integers() | st.text(max_size=8)
        tree = st.recursive(leaf, lambda c: st.lists(c, max_size=3), max_leaves=6)
        base = st.dictionaries(st.text(max_size=8), tree, max_size=3)
    return st.none() | base if optional else base


@settings(max_examples=40, deadline=None)
@given(values_of(RunConfig))
def test_round_trip_through_yaml(config: RunConfig) -> None:
    assert from_dict(RunConfig, yaml.safe_load(dump_yaml(config)), "dump") == config


# --- describe_options -------------------------------------------------------------------------


def test_describe_options_lists_every_leaf_with_help() -> None:
    rows = {row[0]: row[1:] for row in describe_options(RunConfig)}
    assert rows["train.epochs"] == (
        "int | null",
        "10",
        "The budget in passes over the training batches.",
    )
    assert rows["train.steps"] == (
        "int | null",
        "null",
        "A budget in optimiser steps; when set it wins over `epochs`. 0 with a pretrained "
        "encoder: no training, the published weights are saved as the run's model (calibrated "
        "and evaluated like any other), the baseline a fine-tuning run is compared with.",
    )
    assert rows["train.precision"][0] == "fp32 | bf16 | fp16"
    assert rows["augment.scale"][:2] == ("[float, float]", "[1.0, 1.0]")
    assert rows["model.options"][:2] == ("mapping", "{}")
    assert rows["model.normalize"][1] == "true"
    assert rows["train.early_stop.patience"][2].startswith("Validations without improvement")
    # multi-line help is one line
    assert "\n" not in rows["data.validation"][2] and "open-set" in rows["data.validation"][2]
    assert "train" not in rows and "train.early_stop" not in rows  # sections are not leaves
    assert list(rows) == list(leaves(RunConfig()))  # every leaf, in field order


def test_describe_options_without_source() -> None:
    namespace: dict[str, Any] = {}
    exec(  # a class with no source file: the help is empty, nothing crashes
        "from dataclasses import dataclass\n"
        "@dataclass\nclass Made:\n    size: int = 3\n    'The size.'\n",
        namespace,
    )
    assert describe_options(namespace["Made"]) == [("size", "int", "3", "")]


# --- value checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=0", "train.epochs = 0 must be >= 1"),
        ("optimizer.lr=0", "optimizer.lr = 0.0 must be > 0"),
        ("data.validation_fraction=1.5", "data.validation_fraction = 1.5 must be between 0 and 1"),
        ("augment.hflip=2", "augment.hflip = 2.0 must be a probability in [0, 1]"),
        (
            "augment.scale=[1.2, 0.8]",
            "augment.scale = [1.2, 0.8] must be [low, high] with 0 < low <= high",
        ),
        (
            "optimizer.betas=[0.9, 1.0]",
            "optimizer.betas = (0.9, 1.0) must be two numbers in [0, 1)",
        ),
        ("train.threads=0", "train.threads = 0 must be >= 1 or null"),
        ("train.early_stop.patience=-1", "train.early_stop.patience = -1 must be >= 0"),
    ],
)
def test_check_config_names_key_and_range(tmp_path: Path, override: str, message: str) -> None:
    path = write(tmp_path, "seed: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path, [override])
    assert str(err.value) == f"{path}: {message}"


def test_check_config_cross_field_rules() -> None:
    with pytest.raises(ConfigError, match=r"set a budget, train.epochs or train.steps"):
        load_config(None, ["train.epochs=null"])
    with pytest.raises(ConfigError, match=r"data.validation_split is not set"):
        load_config(None, ["data.validation=split"])
    with pytest.raises(ConfigError, match=r"cannot train on batches.kind 'pairs'"):
        load_config(None, ["batches.kind=pairs"])
    with pytest.raises(
        ConfigError,
        match=r"'contrastive' cannot train on batches.kind 'triplets'.*loss.name triplet",
    ):
        load_config(None, ["batches.kind=triplets", "loss.name=contrastive"])
    check_config(RunConfig(train=TrainConfig(epochs=None, steps=5)), "x")  # steps alone is fine
    check_config(RunConfig(augment=AugmentConfig(scale=(0.5, 0.5))), "x")


def test_messages_start_with_the_source(tmp_path: Path) -> None:
    path = write(tmp_path, "train:\n  epochs: ten\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: train\.epochs must be"):
        load_config(path)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.test_fraction=0.7"], "between 0 and 0.5"),
        (["data.test_fraction=0.25", "data.test_fold=4"], "choose 0 to 3"),
        (["data.test_fraction=0.25", "data.validation=split"], "not 'split'"),
        (
            ["data.test_fraction=0.25", "data.options={rotated_classes: true}"],
            "rotated_classes",
        ),
    ],
)
def test_test_classes_options_are_checked(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
