"""The encoder zoo, the embedding head, its spec round trip and the Siamese pair head."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
import torch
from torch import nn

from siamese.errors import ConfigError, DataError
from siamese.losses import PairClassifierLoss
from siamese.models import (
    ENCODERS,
    MLP,
    ConvNet,
    EmbeddingNet,
    RecurrentEncoder,
    ResNet,
    SeedCNN,
    SiameseNet,
    build_embedding_net,
    build_encoder,
    convnet,
    encoder_options,
    mlp,
    recurrent,
    resnet,
    seed_cnn,
)
from siamese.models.arguments import EXPECTED_INPUT


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """These networks are tiny: a second thread only adds synchronisation, which costs
    seconds on a loaded 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def n_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# (encoder, input shape, options) on the typical inputs each encoder reads.
TYPICAL: list[tuple[str, tuple[int, ...], dict]] = [
    ("mlp", (10,), {}),
    ("mlp", (1, 28, 28), {"hidden": (64, 32)}),
    ("mlp", (28, 28), {"hidden": ()}),
    ("seed_cnn", (1, 28, 28), {}),
    ("seed_cnn", (1, 112, 92), {"channels": (6, 12), "hidden": (128,), "dropout": 0.25}),
    ("seed_cnn", (3, 64, 64), {"channels": (8, 16), "kernel_size": 5, "hidden": (32,)}),
    ("convnet", (1, 28, 28), {"widths": (8, 8, 8, 8)}),
    ("convnet", (1, 112, 92), {"widths": (8, 16)}),
    ("convnet", (3, 64, 64), {"widths": (8, 8, 16)}),
    ("resnet", (1, 28, 28), {"widths": (8, 16), "blocks": (2, 1)}),
    ("resnet", (1, 112, 92), {"widths": (8, 16, 16), "stem_stride": 2}),
    ("resnet", (3, 64, 64), {"widths": (8, 16)}),
    ("lstm", (28, 28), {"hidden_size": 8, "layers": 2}),
    ("lstm", (1, 28, 28), {"hidden_size": 8, "bidirectional": True}),
    ("gru", (28, 28), {"hidden_size": 8, "layers": 2, "dropout": 0.1}),
    ("gru", (3, 32, 32), {"hidden_size": 8, "bidirectional": True}),
]
IDS = [f"{name}-{'x'.join(map(str, shape))}" for name, shape, _ in TYPICAL]


def expected_out_features(name: str, shape: tuple[int, ...], options: dict) -> int:
    if name == "mlp":
        hidden = options.get("hidden", (64,))
        return hidden[-1] if hidden else int(torch.tensor(shape).prod())
    if name == "seed_cnn":
        if options.get("hidden"):
            return options["hidden"][-1]
        _, h, w = shape
        k = options.get("kernel_size", 3)
        for _ in options.get("channels", (32, 64)):
            h, w = (h - k + 1) // 2, (w - k + 1) // 2
        return options.get("channels", (32, 64))[-1] * h * w
    if name in ("convnet", "resnet"):
        return options["widths"][-1]
    return options["hidden_size"] * (2 if options.get("bidirectional") else 1)


@pytest.mark.parametrize(("name", "shape", "options"), TYPICAL, ids=IDS)
def test_encoder_output_shape_and_out_features(name, shape, options) -> None:
    torch.manual_seed(0)
    encoder = build_encoder(name, shape, **options)
    out = encoder(torch.rand(3, *shape))
    assert out.shape == (3, encoder.out_features)
    assert isinstance(encoder.out_features, int)
    assert encoder.out_features == expected_out_features(name, shape, options)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize(("name", "shape", "options"), TYPICAL, ids=IDS)
def test_gradients_reach_every_parameter(name, shape, options) -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(build_encoder(name, shape, **options), embedding_dim=8, normalize=False)
    net(torch.rand(4, *shape)).square().sum().backward()
    for param_name, param in net.named_parameters():
        assert param.grad is not None, param_name
        assert torch.isfinite(param.grad).all(), param_name
        assert param.grad.abs().sum() > 0, param_name


@pytest.mark.parametrize(("name", "shape", "options"), TYPICAL, ids=IDS)
def test_spec_round_trip_rebuilds_the_same_network(name, shape, options) -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(
        build_encoder(name, shape, **options), embedding_dim=6, mean=0.5, std=0.25
    ).eval()
    spec = json.loads(json.dumps(net.spec))  # JSON-able, and survives the trip
    assert spec == net.spec
    assert spec["encoder"] == name and spec["mean"] == 0.5 and spec["std"] == 0.25
    clone = build_embedding_net(spec, shape).eval()
    clone.load_state_dict(net.state_dict(), strict=True)
    x = (torch.rand(2, *shape) * 255).to(torch.uint8)
    with torch.no_grad():
        assert torch.equal(net(x), clone(x))
    assert clone.spec == spec


@pytest.mark.parametrize(("name", "shape", "options"), TYPICAL, ids=IDS)
def test_eval_mode_is_deterministic(name, shape, options) -> None:
    net = EmbeddingNet(build_encoder(name, shape, **options), embedding_dim=4).eval()
    x = torch.rand(2, *shape)
    with torch.no_grad():
        assert torch.equal(net(x), net(x))


def test_every_encoder_has_a_documented_input_and_constructor() -> None:
    assert set(EXPECTED_INPUT) == set(ENCODERS)
    assert encoder_options("convnet") == ("widths",)
    assert encoder_options("lstm") == ("hidden_size", "layers", "bidirectional", "dropout")
    assert "input_shape" not in encoder_options("mlp")


# (module whose docstring states the count, the network, its parameter count)
DOCUMENTED_COUNTS: list[tuple[object, Callable[[], nn.Module], int]] = [
    (mlp, lambda: MLP((784,)), 50_240),
    (
        mlp,
        lambda: EmbeddingNet(
            MLP((1, 28, 28), hidden=(64,)), 64, normalize=False, output_activation="sigmoid"
        ),
        54_400,
    ),
    (seed_cnn, lambda: SeedCNN((1, 28, 28)), 18_816),
    (seed_cnn, lambda: EmbeddingNet(SeedCNN((1, 28, 28)), embedding_dim=10), 34_826),
    (seed_cnn, lambda: SeedCNN((1, 56, 46), (6, 12), hidden=(128,), dropout=0.25), 185_168),
    (
        seed_cnn,
        lambda: EmbeddingNet(SeedCNN((1, 56, 46), (6, 12), hidden=(128,), dropout=0.25), 50),
        191_618,
    ),
    (convnet, lambda: ConvNet(1), 111_680),
    (convnet, lambda: ConvNet(3), 112_832),
    (convnet, lambda: ConvNet(1, (16, 32, 64, 128)), 97_392),
    (resnet, lambda: ResNet((1, 112, 92)), 1_225_824),
    (resnet, lambda: ResNet((3, 64, 64)), 1_226_400),
    (recurrent, lambda: RecurrentEncoder((28, 28), "lstm"), 80_896),
    (recurrent, lambda: RecurrentEncoder((1, 28, 28), "gru"), 60_672),
]


@pytest.mark.parametrize(("module", "make", "count"), DOCUMENTED_COUNTS)
def test_documented_parameter_counts(module, make, count) -> None:
    assert f"{count:,}" in module.__doc__
    assert n_parameters(make()) == count


def test_seed_cnn_feature_sizes_of_the_tutorials() -> None:
    assert SeedCNN((1, 28, 28)).out_features == 1600  # 64 × 5 × 5
    orl = SeedCNN((1, 56, 46), (6, 12), hidden=(128,))
    assert orl.feature_map_shape == (12, 12, 10) and orl.out_features == 128


def test_recurrent_encoder_reads_images_row_by_row() -> None:
    torch.manual_seed(0)
    images = torch.rand(3, 2, 5, 4)  # (N, C, H, W) → 5 steps of 2·4 features
    on_images = RecurrentEncoder((2, 5, 4), "gru", hidden_size=6, bidirectional=True)
    on_rows = RecurrentEncoder((5, 8), "gru", hidden_size=6, bidirectional=True)
    on_rows.load_state_dict(on_images.state_dict())
    rows = images.permute(0, 2, 1, 3).reshape(3, 5, 8)
    torch.testing.assert_close(on_images(images), on_rows(rows))


def test_recurrent_encoder_output_is_the_last_layers_final_state() -> None:
    torch.manual_seed(0)
    encoder = RecurrentEncoder((7, 3), "lstm", hidden_size=5, layers=2, bidirectional=True)
    x = torch.rand(2, 7, 3)
    outputs, _ = encoder.rnn(x)  # (N, T, 2·H): forward half ends at t = T-1, backward at t = 0
    expected = torch.cat([outputs[:, -1, :5], outputs[:, 0, 5:]], dim=1)
    torch.testing.assert_close(encoder(x), expected)


def test_recurrent_encoder_accepts_any_sequence_length() -> None:
    encoder = build_encoder("lstm", (28, 6), hidden_size=4)
    assert encoder(torch.rand(2, 11, 6)).shape == (2, 4)


def test_sigmoid_output_lies_in_the_unit_interval() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(
        build_encoder("mlp", (1, 28, 28)), 64, normalize=False, output_activation="sigmoid"
    )
    z = net(torch.randint(0, 256, (5, 1, 28, 28), dtype=torch.uint8))
    assert z.shape == (5, 64) and z.dtype == torch.float32
    assert ((z > 0) & (z < 1)).all()
    assert net.spec["output_activation"] == "sigmoid"


def test_relu_output_is_non_negative_and_rebuilt_from_its_spec() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(build_encoder("mlp", (1, 28, 28)), 32, output_activation="relu")
    net.eval()
    x = torch.randint(0, 256, (50, 1, 28, 28), dtype=torch.uint8)
    raw = net.projection(net.encoder((x.float() / 255 - net.input_mean) / net.input_std))
    z = net(x)
    assert (z >= 0).all() and bool((raw < 0).any())
    torch.testing.assert_close(z, torch.nn.functional.normalize(raw.clamp(min=0), dim=1))
    assert build_embedding_net(net.spec, (1, 28, 28)).output_activation == "relu"


def test_embedding_net_default_behaviour_is_unchanged() -> None:
    torch.manual_seed(0)
    net = EmbeddingNet(ConvNet(widths=(8, 16)), embedding_dim=4)
    x = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
    z = net(x)
    torch.testing.assert_close(z.norm(dim=1), torch.ones(3))
    manual = nn.functional.normalize(net.projection(net.encoder(x.float() / 255.0)), dim=1)
    torch.testing.assert_close(z, manual)
    assert set(net.state_dict()) >= {"input_mean", "input_std", "projection.weight"}


def test_demo_style_net_has_a_spec() -> None:
    net = EmbeddingNet(ConvNet(in_channels=1, widths=(16, 32, 64, 128)), 64)
    assert net.spec == {
        "encoder": "convnet",
        "encoder_options": {"widths": [16, 32, 64, 128]},
        "embedding_dim": 64,
        "normalize": True,
        "output_activation": "none",
        "mean": 0.0,
        "std": 1.0,
        "projection": True,
    }
    build_embedding_net(net.spec, (1, 28, 28)).load_state_dict(net.state_dict(), strict=True)


def test_spec_of_a_foreign_encoder_is_a_config_error() -> None:
    class Custom(nn.Module):
        out_features = 3

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(ConfigError, match="Custom"):
        _ = EmbeddingNet(Custom(), 2).spec


def test_build_embedding_net_rejects_bad_specs() -> None:
    with pytest.raises(ConfigError, match="'encoder'"):
        build_embedding_net({"embedding_dim": 4}, (10,))
    with pytest.raises(ConfigError, match="'widht'"):
        build_embedding_net({"encoder": "mlp", "widht": 3}, (10,))
    with pytest.raises(ConfigError, match="output_activation"):
        build_embedding_net({"encoder": "mlp", "output_activation": "tanh"}, (10,))
    defaults = build_embedding_net({"encoder": "mlp"}, (10,))
    assert defaults.embedding_dim == 64 and defaults.normalize


def test_unknown_encoder_names_the_choices_and_the_nearest() -> None:
    with pytest.raises(ConfigError) as error:
        build_encoder("resent", (1, 28, 28))
    message = str(error.value)
    assert "'resent'" in message and "did you mean 'resnet'" in message
    for name in ENCODERS:
        assert name in message


def test_unknown_option_names_the_option_the_encoder_and_its_options() -> None:
    with pytest.raises(ConfigError) as error:
        build_encoder("convnet", (1, 28, 28), width=(8, 8))
    message = str(error.value)
    assert "'width'" in message and "'convnet'" in message and "widths" in message
    with pytest.raises(ConfigError, match="'kind'"):
        build_encoder("gru", (28, 28), kind="lstm")  # the name sets the kind


@pytest.mark.parametrize(
    ("name", "shape", "expects", "fits"),
    [
        ("convnet", (10,), "(C, H, W)", "'mlp'"),
        ("resnet", (28, 28), "(1, 28, 28)", "'lstm'"),
        ("seed_cnn", (5, 1, 28, 28), "(C, H, W)", "'mlp'"),
        ("lstm", (10,), "(T, F)", "'mlp'"),
    ],
)
def test_wrong_input_rank_says_what_the_encoder_reads_and_what_fits(
    name, shape, expects, fits
) -> None:
    with pytest.raises(ConfigError) as error:
        build_encoder(name, shape)
    message = str(error.value)
    assert expects in message and fits in message and str(shape) in message


@pytest.mark.parametrize(
    ("name", "shape", "options", "match"),
    [
        ("mlp", (10,), {"activation": "swish"}, "relu"),
        ("mlp", (10,), {"dropout": 1.0}, r"\[0, 1\)"),
        ("seed_cnn", (1, 8, 8), {"channels": (4, 4, 4)}, "to nothing"),
        ("convnet", (1, 12, 12), {}, "at least 16×16"),
        ("resnet", (3, 32, 32), {"widths": (8, 16), "blocks": (1,)}, "one block count per width"),
        ("lstm", (28, 28), {"dropout": 0.2}, "layers >= 2"),
        ("gru", (28, 28), {"hidden_size": 0}, "hidden_size"),
    ],
)
def test_invalid_option_values_are_config_errors(name, shape, options, match) -> None:
    with pytest.raises(ConfigError, match=match):
        build_encoder(name, shape, **options)


def test_options_accept_lists_as_json_gives_them() -> None:
    encoder = build_encoder("resnet", (3, 32, 32), widths=[8, 16], blocks=[1, 2])
    assert encoder.encoder_options == {"widths": [8, 16], "blocks": [1, 2], "stem_stride": 1}
    assert build_encoder("resnet", (3, 32, 32), widths=[8, 16, 16]).encoder_options["blocks"] == [
        1,
        1,
        1,
    ]


def test_inputs_of_the_wrong_shape_are_data_errors() -> None:
    with pytest.raises(DataError, match=r"\(784,\)"):
        build_encoder("mlp", (784,))(torch.rand(2, 100))
    with pytest.raises(DataError, match="build the model"):
        build_encoder("seed_cnn", (1, 28, 28))(torch.rand(2, 1, 32, 32))
    with pytest.raises(DataError, match=r"\(N, T, 28\)"):
        build_encoder("lstm", (28, 28), hidden_size=4)(torch.rand(2, 28, 5))


def test_siamese_net_logits_are_symmetric_and_probabilities_in_unit_interval() -> None:
    torch.manual_seed(0)
    net = SiameseNet(EmbeddingNet(build_encoder("convnet", (1, 28, 28), widths=(8, 8)), 8))
    head_params = {id(p) for p in net.head.parameters()}
    assert head_params and head_params <= {id(p) for p in net.parameters()}
    a = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    b = torch.randint(0, 256, (4, 1, 28, 28), dtype=torch.uint8)
    net.eval()
    with torch.no_grad():
        logits = net(a, b)
        assert logits.shape == (4,) and logits.dtype == torch.float32
        torch.testing.assert_close(logits, net(b, a))
        torch.testing.assert_close(logits, net.head.logits(net.embed(a), net.embed(b)))
        p = net.probability(a, b)
        assert ((p > 0) & (p < 1)).all()
        torch.testing.assert_close(p, torch.sigmoid(logits))
    assert net.embed(a).shape == (4, 8)


def test_siamese_net_uses_the_given_head_and_trains_it() -> None:
    torch.manual_seed(0)
    head = PairClassifierLoss(embedding_dim=6)
    net = SiameseNet(EmbeddingNet(build_encoder("lstm", (28, 28), hidden_size=8), 6), head)
    assert net.head is head
    x1, x2 = torch.rand(3, 28, 28), torch.rand(3, 28, 28)
    loss = head.pair_loss(net.embed(x1), net.embed(x2), torch.tensor([1, 0, 1])).mean()
    loss.backward()
    assert head.head.weight.grad is not None
    assert net(x1, x2).shape == (3,)


def test_seed_cnn_takes_the_orl_tutorials_two_dropout_rates() -> None:
    net = SeedCNN((1, 56, 46), (6, 12), hidden=(128,), dropout=0.25, dense_dropout=0.1)
    rates = [m.p for m in net.modules() if isinstance(m, nn.Dropout)]
    assert rates == [0.25, 0.25, 0.1]
    assert net.encoder_options["dense_dropout"] == 0.1
    assert SeedCNN((1, 28, 28), dropout=0.3, hidden=(8,)).encoder_options["dense_dropout"] == 0.3
    with pytest.raises(ConfigError, match="dropout"):
        SeedCNN((1, 28, 28), dense_dropout=1.5)
