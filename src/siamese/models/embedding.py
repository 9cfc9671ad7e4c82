"""`EmbeddingNet`: an encoder, a linear projection to D, an optional output activation and
optional L2 normalisation; `build_embedding_net` rebuilds one from its `spec`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from siamese.errors import ConfigError
from siamese.models.builder import build_encoder

OUTPUT_ACTIVATIONS: tuple[str, ...] = ("none", "sigmoid", "relu")
SPEC_KEYS: tuple[str, ...] = (
    "encoder",
    "encoder_options",
    "embedding_dim",
    "normalize",
    "output_activation",
    "mean",
    "std",
    "projection",
)


class EmbeddingNet(nn.Module):
    """Maps inputs to (N, D) float32 embeddings, unit-length when `normalize`.

    Inputs are uint8 images (scaled here to [0, 1] then standardised with `mean`/`std`) or
    float tensors already in that range.

    Args:
        encoder: a module mapping (N, ...) inputs to (N, encoder.out_features) features; one
            from `siamese.models` (`build_encoder`) also gives the net a `spec`.
        embedding_dim: D.
        normalize: L2-normalise the embeddings (distances then lie in [0, 2]).
        mean, std: input standardisation, applied after scaling uint8 to [0, 1].
        output_activation: applied after the projection, before normalisation: "none", or
            "sigmoid" (each coordinate in (0, 1), as the Keras MNIST tutorial) or "relu"
            (non-negative coordinates, as the ORL contrastive tutorial's last dense layer).
        projection: False: no linear projection, the encoder's features are the embedding
            (`embedding_dim` must equal `encoder.out_features`), as for a pretrained encoder
            whose own output layer is the embedding (dlib's 128-d face descriptors).

    Example:
        >>> import torch
        >>> from siamese import ConvNet, EmbeddingNet
        >>> _ = torch.manual_seed(0)
        >>> net = EmbeddingNet(ConvNet(in_channels=1, widths=(8, 16)), embedding_dim=4).eval()
        >>> images = torch.randint(0, 256, (3, 1, 28, 28), dtype=torch.uint8)
        >>> z = net(images)
        >>> tuple(z.shape), z.dtype, torch.allclose(z.norm(dim=1), torch.ones(3))
        ((3, 4), torch.float32, True)
        >>> net.spec["encoder"], net.spec["encoder_options"], net.spec["embedding_dim"]
        ('convnet', {'widths': [8, 16]}, 4)
    """

    def __init__(
        self,
        encoder: nn.Module,
        embedding_dim: int = 64,
        normalize: bool = True,
        mean: float = 0.0,
        std: float = 1.0,
        output_activation: str = "none",
        projection: bool = True,
    ) -> None:
        super().__init__()
        if output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(
                f"output_activation {output_activation!r} is unknown (model.output_activation "
                f"in a run config): choose one of {', '.join(OUTPUT_ACTIVATIONS)}"
            )
        if (
            not isinstance(embedding_dim, int)
            or isinstance(embedding_dim, bool)
            or embedding_dim < 1
        ):
            raise ConfigError(f"embedding_dim={embedding_dim!r} must be an integer >= 1")
        if not float(std) > 0:
            raise ConfigError(f"input std={std!r} must be > 0 (it divides the inputs)")
        if not isinstance(projection, bool):
            raise ConfigError(f"projection must be true or false, got {projection!r}")
        if not projection and embedding_dim != int(encoder.out_features):
            raise ConfigError(
                f"without a projection the embedding is the encoder's {encoder.out_features} "
                f"features, but embedding_dim is {embedding_dim}: set model.embedding_dim to "
                f"{encoder.out_features}, or keep model.projection true"
            )
        self.encoder = encoder
        self.projection: nn.Module = (
            nn.Linear(int(encoder.out_features), embedding_dim) if projection else nn.Identity()
        )
        self.has_projection = projection
        self.normalize = bool(normalize)
        self.embedding_dim = embedding_dim
        self.output_activation = output_activation
        self.register_buffer("input_mean", torch.tensor(float(mean)), persistent=True)
        self.register_buffer("input_std", torch.tensor(float(std)), persistent=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N, ...) inputs → (N, D) float32 embeddings."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = (x - self.input_mean) / self.input_std
        z = self.projection(self.encoder(x)).float()
        if self.output_activation == "sigmoid":
            z = torch.sigmoid(z)
        elif self.output_activation == "relu":
            z = torch.relu(z)
        return nn.functional.normalize(z, dim=1) if self.normalize else z

    @property
    def spec(self) -> dict[str, Any]:
        """The architecture as a JSON-able dict (keys `SPEC_KEYS`); with the input shape,
        `build_embedding_net` rebuilds a net whose `state_dict` this one's loads into."""
        name = getattr(self.encoder, "encoder_name", None)
        options = getattr(self.encoder, "encoder_options", None)
        if name is None or options is None:
            raise ConfigError(
                f"this EmbeddingNet's encoder ({type(self.encoder).__name__}) is not one of "
                "siamese.models' encoders, so its architecture cannot be described: build it "
                "with siamese.models.build_encoder, from a built-in name or from your own "
                "factory's import path ('package.module:factory')"
            )
        return {
            "encoder": name,
            "encoder_options": _json_able(options),
            "embedding_dim": self.embedding_dim,
            "normalize": self.normalize,
            "output_activation": self.output_activation,
            "mean": float(self.input_mean),
            "std": float(self.input_std),
            "projection": self.has_projection,
        }


def build_embedding_net(
    spec: Mapping[str, Any], input_shape: Sequence[int], load_weights: bool = True
) -> EmbeddingNet:
    """The `EmbeddingNet` described by `spec` (an `EmbeddingNet.spec`) for examples of shape
    `input_shape`, with fresh weights (a pretrained encoder's published ones unless
    `load_weights` is False). Keys other than `encoder` default to `EmbeddingNet`'s defaults.

    An `encoder` of the form `package.module:factory` (your own) is imported and its factory
    called with `encoder_options` (`siamese.models.builder`): only models you trust.

    Raises:
        ConfigError: for a missing `encoder`, an unknown key, or an invalid value
            (`EncoderImportError` when your own encoder's path cannot be imported).

    Example:
        >>> import torch
        >>> from siamese import build_embedding_net
        >>> _ = torch.manual_seed(0)
        >>> spec = {"encoder": "mlp", "encoder_options": {"hidden": [32]}, "embedding_dim": 8}
        >>> net = build_embedding_net(spec, (1, 8, 8)).eval()
        >>> tuple(net(torch.rand(5, 1, 8, 8)).shape)
        (5, 8)
        >>> copy = build_embedding_net(net.spec, (1, 8, 8))  # the same architecture again
        >>> copy.load_state_dict(net.state_dict())
        <All keys matched successfully>
    """
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} in the model spec: its keys are {', '.join(SPEC_KEYS)}"
        )
    if "encoder" not in spec:
        raise ConfigError(
            "the model spec has no 'encoder': name one of siamese.models.ENCODERS, e.g. "
            "'convnet', or your own factory as 'package.module:factory'"
        )
    options = spec.get("encoder_options") or {}
    if not isinstance(options, Mapping):
        raise ConfigError(
            f"encoder_options in the model spec must be a mapping of option names to values, "
            f"not {type(options).__name__}"
        )
    reserved = sorted(set(options) & {"name", "input_shape", "load_weights"})
    if reserved:
        raise ConfigError(
            f"encoder_options in the model spec set {reserved[0]!r}, which comes from the data "
            "or the encoder's name, not from the options: remove it (model.options)"
        )
    encoder = build_encoder(spec["encoder"], tuple(input_shape), load_weights, **options)
    return EmbeddingNet(
        encoder,
        embedding_dim=spec.get("embedding_dim", 64),
        normalize=spec.get("normalize", True),
        mean=spec.get("mean", 0.0),
        std=spec.get("std", 1.0),
        output_activation=spec.get("output_activation", "none"),
        projection=spec.get("projection", True),
    )


def _json_able(value: Any) -> Any:
    """`value` with tuples turned into lists, recursively, and copied."""
    if isinstance(value, Mapping):
        return {str(k): _json_able(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_able(v) for v in value]
    return value
