"""Rotations as new classes (Omniglot's class augmentation)."""

from __future__ import annotations

import pytest
import torch

from siamese.data.derived.rotated_classes import with_rotated_classes
from siamese.data.labeled import LabeledData
from siamese.errors import ConfigError


def _data() -> LabeledData:
    x = torch.arange(3 * 1 * 4 * 4, dtype=torch.uint8).reshape(3, 1, 4, 4)
    return LabeledData(
        x=x,
        y=torch.tensor([0, 1, 1]),
        classes=["a", "b"],
        meta={"drawer": torch.tensor([5, 6, 7])},
        paths=["a/1.png", "b/1.png", "b/2.png"],
    )


def test_each_turn_is_a_new_class_of_turned_images() -> None:
    data = _data()
    out = with_rotated_classes(data)
    assert tuple(out.x.shape) == (12, 1, 4, 4)
    assert torch.equal(out.x[:3], data.x)  # the originals first, unchanged
    for k in range(4):
        part = out.x[3 * k : 3 * k + 3]
        assert torch.equal(part, torch.rot90(data.x, k, dims=(-2, -1)))
        assert out.y[3 * k : 3 * k + 3].tolist() == [2 * k, 2 * k + 1, 2 * k + 1]
    # a quarter turn moves the top-left pixel to the bottom-left (counter-clockwise)
    assert int(out.x[3, 0, 3, 0]) == int(data.x[0, 0, 0, 0])
    assert out.classes == ["a", "b", "a @90°", "b @90°", "a @180°", "b @180°", "a @270°", "b @270°"]
    assert out.meta["rotation"].tolist() == [0] * 3 + [90] * 3 + [180] * 3 + [270] * 3
    assert out.meta["drawer"].tolist() == [5, 6, 7] * 4
    assert out.paths[3] == "a/1.png@90" and out.paths[0] == "a/1.png"


def test_non_square_images_are_refused() -> None:
    data = LabeledData(
        x=torch.zeros(2, 1, 4, 3, dtype=torch.uint8), y=torch.tensor([0, 1]), classes=["a", "b"]
    )
    with pytest.raises(ConfigError, match=r"needs square images .* \(2, 1, 4, 3\)"):
        with_rotated_classes(data)
