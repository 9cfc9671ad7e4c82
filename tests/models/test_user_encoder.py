"""Your own encoder: `model.encoder: "package.module:factory"` builds it, model.json records the
path, and loading imports that path again (nothing unpickled), with clear errors throughout."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import safetensors.torch
import torch

from siamese.config import load_config
from siamese.config.schema import BUILT_IN_ENCODERS
from siamese.config.schema import ENCODER_PATH as CONFIG_ENCODER_PATH
from siamese.errors import CheckpointError, ConfigError
from siamese.models import EmbeddingNet, build_embedding_net, load_model, save_model
from siamese.models.builder import (
    ENCODER_PATH,
    ENCODERS,
    EncoderImportError,
    build_encoder,
    encoder_options,
    import_encoder_factory,
    is_encoder_path,
)

PACKAGE = "siamese_test_myenc"

SOURCE = """
import torch
from torch import nn

NOT_CALLABLE = 3


def small_cnn(input_shape, width=8, features=12):
    # no out_features attribute: build_encoder measures it
    return nn.Sequential(
        nn.Conv2d(input_shape[0], width, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(2),
        nn.Flatten(),
        nn.Linear(width * 4, features),
    )


class WithOutFeatures(nn.Module):
    def __init__(self, input_shape, hidden=(6,)):
        super().__init__()
        size = 1
        for n in input_shape:
            size *= n
        self.linear = nn.Linear(size, hidden[-1])
        self.out_features = hidden[-1]
        self.hidden = hidden

    def forward(self, x):
        return self.linear(x.flatten(1))


def any_options(**kwargs):
    seen = dict(kwargs)
    shape = seen.pop("input_shape")
    module = nn.Sequential(nn.Flatten(), nn.Linear(shape[0] * shape[1] * shape[2], 5))
    module.seen = seen
    return module


def no_shape(width=4):
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, width))


def needs_depth(input_shape, depth):
    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, depth))


def not_a_module(input_shape):
    return "a string"


def four_d(input_shape):
    return nn.Conv2d(input_shape[0], 4, 3)


def raises(input_shape, width=2):
    raise ValueError("width must be even")


def wrong_input(input_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(3, 2))
"""

BROKEN = """
import siamese_test_no_such_dependency  # noqa: F401

def factory(input_shape):
    raise AssertionError("never reached")
"""


def _forget_package() -> None:
    for name in list(sys.modules):
        if name == PACKAGE or name.startswith(PACKAGE + "."):
            del sys.modules[name]


def write_package(root: Path) -> Path:
    """The package `PACKAGE` under `root`: the factories above, and a module whose own import
    fails."""
    folder = root / PACKAGE
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "__init__.py").write_text(textwrap.dedent(SOURCE), encoding="utf-8")
    (folder / "broken.py").write_text(textwrap.dedent(BROKEN), encoding="utf-8")
    return folder


@pytest.fixture
def package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real package on sys.path, imported afresh by each test."""
    root = tmp_path / "site"
    folder = write_package(root)
    monkeypatch.syspath_prepend(str(root))
    _forget_package()
    importlib.invalidate_caches()
    yield folder
    _forget_package()


def path(factory: str) -> str:
    return f"{PACKAGE}:{factory}"


# --- the config -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [*BUILT_IN_ENCODERS, "mypkg.encoders:small_cnn", "mypkg:Factory.create", "_x.y2:f_1"],
)
def test_the_config_accepts_built_in_names_and_paths(value: str) -> None:
    assert load_config(None, [f"model.encoder={value}"]).model.encoder == value


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        ("convnett", "did you mean 'convnet'"),
        ("mypkg.encoders.small_cnn", "did you mean 'mypkg.encoders:small_cnn'"),
        ("my-pkg:f", "package.module:factory"),
        ("mypkg:", "package.module:factory"),
        (":factory", "package.module:factory"),
        ("a:b:c", "package.module:factory"),
        ("mypkg/encoders.py:f", "package.module:factory"),
        ("mypkg.:f", "package.module:factory"),
        ("mypkg:f()", "package.module:factory"),
        ("", "package.module:factory"),
    ],
)
def test_the_config_rejects_malformed_encoders(value: str, hint: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, [f"model.encoder='{value}'"])
    message = str(caught.value)
    assert "model.encoder" in message and repr(value) in message and hint in message
    assert "convnet" in message and "dlib_face_resnet" in message  # the built-in names


def test_the_config_and_the_models_agree_on_names_and_paths() -> None:
    assert BUILT_IN_ENCODERS == ENCODERS
    assert CONFIG_ENCODER_PATH.pattern == ENCODER_PATH.pattern
    assert CONFIG_ENCODER_PATH.flags == ENCODER_PATH.flags
    assert is_encoder_path("a.b:c") and not is_encoder_path("convnet")


def test_the_help_describes_your_own_encoder() -> None:
    from siamese.config.help import describe_options
    from siamese.config.schema import RunConfig

    rows = {key: (kind, default, text) for key, kind, default, text in describe_options(RunConfig)}
    kind, default, text = rows["model.encoder"]
    assert kind == "str" and default == "convnet"
    assert "package.module:factory" in text and "dlib_face_resnet" in text


# --- building -----------------------------------------------------------------------------


def test_a_factory_without_out_features_is_measured(package: Path) -> None:
    encoder = build_encoder(path("small_cnn"), (1, 28, 28), width=4, features=7)
    assert encoder.out_features == 7 and encoder.training  # the measurement restores train mode
    assert encoder.encoder_name == path("small_cnn")
    assert encoder.encoder_options == {"width": 4, "features": 7}
    assert encoder(torch.rand(3, 1, 28, 28)).shape == (3, 7)
    assert encoder_options(path("small_cnn")) == ("width", "features")


def test_the_module_s_own_out_features_is_used(package: Path) -> None:
    encoder = build_encoder(path("WithOutFeatures"), (1, 4, 4), hidden=[3, 9])
    assert encoder.out_features == 9 and encoder.hidden == [3, 9]
    assert encoder.encoder_options == {"hidden": [3, 9]}


def test_a_factory_with_kwargs_takes_any_option_and_the_shape(package: Path) -> None:
    encoder = build_encoder(path("any_options"), (1, 2, 3), colour="blue", depth=[1, 2])
    assert encoder.seen == {"colour": "blue", "depth": [1, 2]}
    assert encoder.out_features == 5


def test_a_factory_without_input_shape_gets_the_options_only(package: Path) -> None:
    encoder = build_encoder(path("no_shape"), (1, 28, 28), width=6)
    assert encoder.out_features == 6
    assert encoder_options(path("no_shape")) == ("width",)


def test_the_spec_rebuilds_the_same_net(package: Path) -> None:
    net = EmbeddingNet(
        build_encoder(path("small_cnn"), (1, 28, 28), width=4), embedding_dim=5, mean=0.3
    )
    spec = net.spec
    assert spec["encoder"] == path("small_cnn") and spec["encoder_options"] == {"width": 4}
    rebuilt = build_embedding_net(json.loads(json.dumps(spec)), [1, 28, 28])
    rebuilt.load_state_dict(net.state_dict(), strict=True)
    x = torch.randint(0, 256, (6, 1, 28, 28), dtype=torch.uint8)
    torch.testing.assert_close(rebuilt.eval()(x), net.eval()(x), rtol=0, atol=0)


def test_save_and_load_round_trip(package: Path, tmp_path: Path) -> None:
    encoder = build_encoder(path("small_cnn"), (1, 28, 28), width=4)
    net = EmbeddingNet(encoder, embedding_dim=8).eval()
    save_model(tmp_path / "model", net, (1, 28, 28))
    description = json.loads((tmp_path / "model" / "model.json").read_text())
    assert description["architecture"]["encoder"] == path("small_cnn")
    assert description["architecture"]["encoder_options"] == {"width": 4}
    loaded = load_model(tmp_path / "model")
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)


def test_a_model_whose_encoder_is_gone_says_what_to_install(
    package: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    net = EmbeddingNet(build_encoder(path("small_cnn"), (1, 28, 28)), embedding_dim=8)
    save_model(tmp_path / "model", net, (1, 28, 28))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p != str(package.parent)])
    _forget_package()
    importlib.invalidate_caches()
    with pytest.raises(CheckpointError) as caught:
        load_model(tmp_path / "model")
    message = str(caught.value)
    assert str(tmp_path / "model") in message
    assert f"trained with encoder '{path('small_cnn')}'" in message
    assert f"No module named '{PACKAGE}'" in message
    assert "install the package" in message and "PYTHONPATH" in message


# --- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("encoder", "options", "expected"),
    [
        ("small_cnn", {"widht": 3}, r"unknown option 'widht'.*did you mean 'width'"),
        ("NOT_CALLABLE", {}, "names a int, not a callable"),
        ("not_a_module", {}, "returned a str, not a torch.nn.Module"),
        ("four_d", {}, r"returned a torch.float32 tensor of shape \(2, 4, 26, 26\)"),
        ("wrong_input", {}, r"cannot read inputs of shape .*\(2, 1, 28, 28\)"),
        ("needs_depth", {}, "missing a required argument: 'depth'"),
        ("raises", {"width": 3}, "the factory raised ValueError: width must be even"),
        ("small_cnn", {"width": object()}, r"model.options.width = <object .*cannot be written"),
        ("small_cnn", {"width": float("nan")}, "model.options.width = nan"),
        ("any_options", {"deep": {"a": {1, 2}}}, r"model.options.deep.a = \{1, 2\}"),
    ],
)
def test_a_bad_factory_or_option_is_a_clear_config_error(
    package: Path, encoder: str, options: dict, expected: str
) -> None:
    with pytest.raises(ConfigError, match=expected) as caught:
        build_encoder(path(encoder), (1, 28, 28), **options)
    assert path(encoder) in str(caught.value)


def test_input_shape_is_not_an_option(package: Path) -> None:
    spec = {"encoder": path("small_cnn"), "encoder_options": {"input_shape": [1, 2]}}
    with pytest.raises(ConfigError, match="comes from the data"):
        build_embedding_net(spec, (1, 28, 28))


def test_a_missing_module_names_the_path_and_what_to_do(package: Path) -> None:
    with pytest.raises(EncoderImportError) as caught:
        build_encoder("siamese_test_nowhere.enc:factory", (1, 28, 28))
    message = str(caught.value)
    assert "'siamese_test_nowhere.enc:factory'" in message
    assert "No module named 'siamese_test_nowhere'" in message
    assert "install the package" in message and "PYTHONPATH" in message
    assert caught.value.path == "siamese_test_nowhere.enc:factory"


def test_a_module_whose_own_import_fails_names_the_missing_dependency(package: Path) -> None:
    with pytest.raises(EncoderImportError, match="siamese_test_no_such_dependency"):
        build_encoder(f"{PACKAGE}.broken:factory", (1, 28, 28))


def test_a_missing_attribute_suggests_the_nearest(package: Path) -> None:
    with pytest.raises(EncoderImportError, match=r"no attribute 'small_cn'.*did you mean"):
        import_encoder_factory(path("small_cn"))


def test_a_malformed_path_is_an_unknown_encoder(package: Path) -> None:
    with pytest.raises(ConfigError, match=r"package\.module:factory"):
        build_encoder(f"{PACKAGE}.small_cnn", (1, 28, 28))


# --- a run, end to end ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_with_your_own_encoder_trains_resumes_loads_and_exports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "site"
    write_package(root)
    run = tmp_path / "run"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH")) if p),
    }
    config = tmp_path / "mine.yaml"
    config.write_text(
        textwrap.dedent(
            f"""\
            data: {{name: glyphs, validation_fraction: 0.05}}
            model:
              encoder: "{path("small_cnn")}"
              options: {{width: 4, features: 10}}
              embedding_dim: 8
            batches: {{p: 4, k: 2}}
            train: {{steps: 3, validate_every: 0}}
            """
        ),
        encoding="utf-8",
    )

    def siamese(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "siamese", *args],
            capture_output=True,
            text=True,
            timeout=300,
            env=env,
            cwd=tmp_path,
        )

    trained = siamese("train", str(config), "--out", str(run), "--quiet")
    assert trained.returncode == 0, trained.stdout + trained.stderr
    description = json.loads((run / "model.json").read_text())
    assert description["architecture"]["encoder"] == path("small_cnn")
    assert description["architecture"]["encoder_options"] == {"width": 4, "features": 10}
    assert description["steps"] == 3

    resumed = siamese("train", "--resume", "--out", str(run), "--quiet", "--set", "train.steps=5")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    description = json.loads((run / "model.json").read_text())
    assert description["architecture"]["encoder"] == path("small_cnn")
    assert description["steps"] == 5  # continued from the checkpoint of step 3

    # Without the package on the path the model cannot be loaded, and says why.
    _forget_package()
    from siamese.recognition import Recognizer

    with pytest.raises(CheckpointError, match=rf"trained with encoder '{path('small_cnn')}'"):
        Recognizer.load(run)

    monkeypatch.syspath_prepend(str(root))
    importlib.invalidate_caches()
    try:
        recognizer = Recognizer.load(run)
        x = torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8, generator=torch.Generator())
        embeddings = recognizer.embed_prepared(x)
        assert embeddings.shape == (5, 8)

        # The same numbers as the factory's module, built by hand, with the saved weights.
        from siamese_test_myenc import small_cnn  # type: ignore[import-not-found]

        encoder = small_cnn((1, 28, 28), width=4, features=10)
        encoder.out_features = 10
        arch = description["architecture"]
        by_hand = EmbeddingNet(
            encoder, arch["embedding_dim"], arch["normalize"], arch["mean"], arch["std"]
        )
        by_hand.load_state_dict(
            safetensors.torch.load((run / "model.safetensors").read_bytes()), strict=True
        )
        with torch.no_grad():
            torch.testing.assert_close(by_hand.eval()(x), embeddings, rtol=0, atol=0)
        torch.testing.assert_close(Recognizer.load(run).embed_prepared(x), embeddings)

        from siamese.export.model_export import export_model

        report = export_model(run, tmp_path / "export", "torchscript")
        assert report.max_abs_difference <= 1e-4
    finally:
        _forget_package()
