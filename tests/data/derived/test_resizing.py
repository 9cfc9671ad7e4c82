"""Dataset resizing: PIL-like antialiased bilinear shrinking, fitting to a model's input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from siamese.data.derived.resized import fitted_to, resize_images
from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError


def test_shrinking_matches_pillows_bilinear_filter_within_rounding() -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 1, 112, 92), dtype=np.uint8)
    ours = resize_images(torch.from_numpy(images), (56, 46)).numpy()
    for image, mine in zip(images, ours, strict=True):
        pil = np.asarray(Image.fromarray(image[0]).resize((46, 56), Image.Resampling.BILINEAR))
        assert np.abs(pil.astype(int) - mine[0].astype(int)).max() <= 1


def test_strokes_survive_a_4x_shrink_and_a_uniform_image_stays_uniform() -> None:
    x = torch.zeros(1, 1, 105, 105, dtype=torch.uint8)
    x[..., :, 50:53] = 255  # a 3-pixel vertical stroke
    small = resize_images(x, (28, 28))
    assert int(small.max()) >= 100  # antialiasing spreads it instead of skipping it
    flat = torch.full((2, 1, 30, 30), 77, dtype=torch.uint8)
    assert torch.equal(resize_images(flat, (9, 13)), torch.full((2, 1, 9, 13), 77))


def test_same_size_is_returned_unchanged_and_chunks_agree_with_one_call() -> None:
    x = torch.randint(0, 256, (5000, 1, 12, 12), dtype=torch.uint8)
    assert resize_images(x, (12, 12)) is x
    once = resize_images(x[:10], (5, 6))
    assert torch.equal(resize_images(x, (5, 6))[:10], once)


def test_fitted_to_resizes_and_converts_only_images_of_1_or_3_channels() -> None:
    data = LabeledData(
        x=torch.zeros(4, 1, 105, 105, dtype=torch.uint8), y=torch.arange(4), classes=list("abcd")
    )
    same, note = fitted_to(data, (1, 105, 105), "ood")
    assert same is data and note == ""
    small, note = fitted_to(data, (1, 28, 28), "ood")
    assert tuple(small.x.shape) == (4, 1, 28, 28) and note == "resized from 105×105 to 28×28"
    colour, note = fitted_to(data, (3, 28, 28), "ood")
    assert tuple(colour.x.shape) == (4, 3, 28, 28)
    assert note == "converted from 1 channel to 3, resized from 105×105 to 28×28"
    with pytest.raises(
        ConfigError,
        match=r"ood: examples of shape \(1, 105, 105\), but the model takes \(4, 28, 28\)",
    ):
        fitted_to(data, (4, 28, 28), "ood")
    with pytest.raises(ConfigError, match="needs images"):
        resize_images(torch.zeros(3, 4), (2, 2))


def test_colour_to_grey_matches_pillow_and_grey_to_colour_repeats() -> None:
    import numpy as np
    from PIL import Image

    from siamese.data.derived.resized import fitted_to, with_channels
    from siamese.data.labeled import LabeledData

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (4, 9, 7, 3), dtype=np.uint8)
    data = LabeledData(
        x=torch.from_numpy(rgb).permute(0, 3, 1, 2).contiguous(), y=torch.arange(4), classes=[]
    )
    grey = with_channels(data, 1).x
    pillow = np.stack([np.asarray(Image.fromarray(image).convert("L")) for image in rgb])
    assert grey.shape == (4, 1, 9, 7)
    assert int((grey[:, 0].int() - torch.from_numpy(pillow).int()).abs().max()) <= 1
    again = with_channels(with_channels(data, 1), 3).x
    assert again.shape == (4, 3, 9, 7) and torch.equal(again[:, 0], again[:, 2])
    fitted, note = fitted_to(data, (1, 18, 14), "photos")
    assert (
        fitted.x.shape == (4, 1, 18, 14)
        and note == "converted from 3 channels to 1, resized from 9×7 to 18×14"
    )
