"""The loss catalog is the one place a loss is described: every entry's module and options
agree with its class, the config is generated from it (flat options, per-loss defaults, one
line per mistake), the objective builds every loss from it and trains a step, and the docs
and `--help` list what it lists."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from siamese.config import LossConfig, RunConfig, load_config
from siamese.config.help import describe_options
from siamese.config.yaml_dialect import dump_yaml, to_dict
from siamese.errors import ConfigError
from siamese.losses import CrossBatchMemory, LossOutput, loss_class
from siamese.losses.catalog import (
    LOSSES,
    loss_entry,
    loss_names,
    markdown_table,
    option_types,
    options_of,
)
from siamese.training.objectives import Objective

README = Path(__file__).resolve().parents[2] / "README.md"
NAMES = loss_names()


@pytest.mark.parametrize("name", NAMES)
def test_each_entry_names_a_class_whose_keywords_are_its_options(name: str) -> None:
    entry = loss_entry(name)
    parameters = inspect.signature(loss_class(name)).parameters
    leading = {"classes": ["num_classes", "embedding_dim"], "head": ["embedding_dim"]}
    assert list(parameters)[: len(leading.get(entry.kind, []))] == leading.get(entry.kind, [])
    for option in entry.options:
        assert option.name in parameters, f"{name} takes no {option.name}"
        assert parameters[option.name].default == option.default, (name, option.name)
    assert ("metric" in parameters) == entry.uses_metric
    assert entry.paper and entry.summary


def test_an_option_name_means_one_type_and_the_names_are_unique() -> None:
    assert len(set(NAMES)) == len(NAMES)
    for entry in LOSSES:
        for option in options_of(entry):
            assert option_types()[option.name] == option.type_, (entry.name, option.name)
            assert option.check(option.default) is None, (entry.name, option.name)


def test_the_config_layer_reads_the_catalog_without_torch() -> None:
    code = "import sys, siamese.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_an_unset_option_takes_the_chosen_loss_default() -> None:
    assert LossConfig().margin == 0.2 and LossConfig().metric == "euclidean"
    arc = load_config(None, ["loss.name=arcface"]).loss
    assert (arc.margin, arc.scale, arc.metric, arc.mining) == (28.6, 64.0, "cosine", None)
    assert load_config(None, ["loss.name=contrastive"]).loss.margin == 1.0
    set_ = load_config(None, ["loss.name=cosface", "loss.margin=0.2", "loss.metric=euclidean"])
    assert (set_.loss.margin, set_.loss.scale, set_.loss.metric) == (0.2, 64.0, "euclidean")


def test_the_saved_config_holds_only_the_chosen_loss_keys_and_reads_back() -> None:
    config = load_config(None, ["loss.name=proxy_anchor", "loss.alpha=16"])
    saved = to_dict(config)["loss"]
    assert saved == {"name": "proxy_anchor", "metric": "cosine", "margin": 0.1, "alpha": 16.0}
    import yaml

    from siamese.config.loading import from_dict

    assert from_dict(RunConfig, yaml.safe_load(dump_yaml(config)), "saved") == config


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["loss.name=arcface", "loss.mining=hard"], "loss.mining does not apply to loss 'arcface'"),
        (["loss.name=arcface", "loss.scale=0"], "loss.scale = 0.0 must be > 0 for loss 'arcface'"),
        (["loss.name=multi_similarity", "loss.base=2"], "must be >= -1 and <= 1"),
        (["loss.name=subcenter_arcface", "loss.centres=0"], "loss.centres = 0 must be >= 1"),
        (["loss.name=ntxent", "loss.temperature=-1"], "loss.temperature = -1.0 must be > 0"),
        (
            ["loss.name=multi_similarity", "batches.kind=pairs"],
            "'multi_similarity' cannot train on batches.kind 'pairs': it needs batches.kind pk",
        ),
        (["loss.name=arcface", "batches.kind=triplets"], "cannot train on batches.kind 'triplets'"),
        (["loss.lr=0.1"], "loss 'triplet' has none"),
        (["loss.name=arcface", "loss.lr=0"], "loss.lr = 0.0 must be > 0"),
        (["loss.name=arcface", "loss.memory=8"], "loss.memory does not apply to loss 'arcface'"),
        (
            ["loss.name=contrastive", "batches.kind=pairs", "loss.memory=8"],
            "loss.memory = 8 keeps embeddings of earlier P×K batches",
        ),
        (["loss.name=circle", "loss.memory=-1"], "loss.memory = -1 must be >= 0"),
        (["loss.scal=3"], "did you mean 'loss.scale'"),
        (["loss.name=arcfce"], "did you mean 'arcface'"),
        (["loss.name=ntxent", "loss.temperature=hot"], "loss.temperature must be a number"),
    ],
)
def test_every_mistake_is_one_line_with_the_fix(overrides: list[str], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_run_config_saved_before_the_catalog_still_loads(tmp_path: Path) -> None:
    """Saved configs held the triplet's keys for every loss; those values are dropped."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "loss: {name: contrastive, margin: 0.5, mining: semihard, metric: euclidean, "
        "soft: false}\nbatches: {kind: pairs}\n",
        encoding="utf-8",
    )
    loss = load_config(path).loss
    assert (loss.margin, loss.mining, loss.soft) == (0.5, None, None)
    head = tmp_path / "head.yaml"
    head.write_text("loss: {name: pair_classifier, margin: 0.2, mining: semihard, soft: false}\n")
    assert load_config(head).loss.margin is None
    with pytest.raises(ConfigError, match=r"loss\.mining does not apply"):
        load_config(None, ["loss.name=contrastive", "loss.mining=hard"])


def test_help_and_readme_list_every_loss_and_option() -> None:
    rows = {row[0]: row for row in describe_options(RunConfig)}
    for entry in LOSSES:
        assert entry.name in rows["loss.name"][1] and entry.summary in rows["loss.name"][3]
        for option in options_of(entry):
            assert entry.name in rows[f"loss.{option.name}"][3], (entry.name, option.name)
    assert {"loss.lr", "loss.memory", "loss.metric"} <= set(rows)
    readme = README.read_text(encoding="utf-8")
    table = readme.split("<!-- loss-catalog:start -->\n")[1].split("\n<!-- loss-catalog:end -->")[0]
    assert table == markdown_table(), "README's loss table is stale: paste markdown_table()"


def _pk_batch(classes: int = 6, per_class: int = 4) -> tuple[torch.Tensor, torch.Tensor]:
    # labels that are neither contiguous nor from 0: the objective maps them to class indices
    labels = (torch.arange(classes) * 7 + 3).repeat_interleave(per_class)
    return torch.arange(len(labels)), labels


STEP_CASES = [(n, 0) for n in NAMES if "pk" in loss_entry(n).batches] + [
    (n, 32) for n in NAMES if loss_entry(n).memory
]


@pytest.mark.parametrize(("name", "memory"), STEP_CASES)
def test_every_loss_trains_a_step_from_its_config(name: str, memory: int) -> None:
    entry = loss_entry(name)
    overrides = [f"loss.name={name}"] + ([f"loss.memory={memory}"] if memory else [])
    config = load_config(None, overrides).loss
    index, labels = _pk_batch()
    torch.manual_seed(0)
    encoder = torch.nn.Linear(5, 8)
    x = torch.randn(len(labels), 5)
    objective = Objective.from_config("pk", config, 8, seed=1, train_labels=labels)
    assert isinstance(objective.loss, CrossBatchMemory) == bool(memory)
    for _ in range(3):  # with a memory, later steps read earlier batches
        encoder.zero_grad()
        objective.zero_grad()
        out = objective.step(lambda i: encoder(x[i]), labels, (index,))
        assert torch.isfinite(out.loss)
        out.loss.backward()
        assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())
        assert any(p.grad.abs().sum() > 0 for p in encoder.parameters())
    own = list(objective.parameters())
    assert bool(own) == entry.owns_parameters
    for p in own:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    if entry.kind == "classes":
        assert objective.classes.tolist() == sorted(set(labels.tolist()))
        weights = next(objective.loss.parameters())
        assert weights.shape[0] % 6 == 0 and weights.shape[-1] == 8


def test_a_class_loss_sees_class_indices_of_the_data_labels() -> None:
    index, labels = _pk_batch(classes=3, per_class=2)
    seen: list[torch.Tensor] = []

    objective = Objective.from_config(
        "pk", LossConfig(name="arcface"), 4, train_labels=labels[torch.randperm(len(labels))]
    )
    inner = objective.loss
    original = inner.forward

    def spy(embeddings: torch.Tensor, y: torch.Tensor) -> LossOutput:
        seen.append(y)
        return original(embeddings, y)

    inner.forward = spy  # type: ignore[method-assign]
    objective.step(lambda i: torch.randn(len(i), 4), labels, (index,))
    assert seen[0].tolist() == [0, 0, 1, 1, 2, 2]
    assert inner.num_classes == 3


def test_the_loss_parameters_learn_at_their_own_rate(tmp_path: Path) -> None:
    from siamese.training.optimization import loss_learning_rate

    proxy = load_config(None, ["loss.name=proxy_anchor", "optimizer.lr=0.001"])
    assert loss_learning_rate(proxy) == pytest.approx(0.1)
    arc = load_config(None, ["loss.name=arcface", "loss.lr=0.05"])
    assert loss_learning_rate(arc) == 0.05
    assert loss_learning_rate(load_config(None, ["loss.name=arcface"])) == 0.001
