"""Batch transforms against brute-force float64 references written here, one sample at a time."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from siamese.data.transforms import (
    AffineParams,
    Compose,
    Normalize,
    RandomAffine,
    RandomCrop,
    RandomHorizontalFlip,
    Resize,
    ToFloat,
    affine_matrices,
    apply_affine,
    koch_omniglot_augmentation,
)
from siamese.errors import ConfigError, DataError


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b: int, c: int, h: int, w: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    x = torch.rand(b, c, h, w, generator=gen(123), dtype=torch.float64)
    if dtype == torch.uint8:
        return (x * 255).round().to(torch.uint8)
    return x.to(dtype)


def reference_affine(x: np.ndarray, p: AffineParams, fill: float) -> np.ndarray:
    """Per sample and output pixel: map the pixel centre through the inverse of the forward map
    `AffineParams` documents (pixels about the centre, y down) and sample bilinearly, with
    `fill` outside the image."""
    b, c, h, w = x.shape
    out = np.empty((b, c, h, w))
    for s in range(b):
        th = math.radians(p.angle[s].item())
        kx = math.tan(math.radians(p.shear_x[s].item()))
        ky = math.tan(math.radians(p.shear_y[s].item()))
        rot = np.array([[math.cos(th), math.sin(th)], [-math.sin(th), math.cos(th)]])
        fwd = (
            rot @ np.array([[1, kx], [ky, 1]]) @ np.diag([p.scale_x[s].item(), p.scale_y[s].item()])
        )
        inv = np.linalg.inv(fwd)
        t = np.array([p.translate_x[s].item() * w, p.translate_y[s].item() * h])
        padded = np.pad(x[s].astype(np.float64), ((0, 0), (1, 1), (1, 1)), constant_values=fill)
        for i in range(h):
            for j in range(w):
                q = inv @ (np.array([j + 0.5 - w / 2, i + 0.5 - h / 2]) - t)
                col, row = q[0] + w / 2 - 0.5, q[1] + h / 2 - 0.5
                c0, r0 = math.floor(col), math.floor(row)
                fc, fr = col - c0, row - r0
                value = np.zeros(c)
                for dr, wr in ((0, 1 - fr), (1, fr)):
                    for dc, wc in ((0, 1 - fc), (1, fc)):
                        rr, cc = r0 + dr, c0 + dc
                        inside = 0 <= rr < h and 0 <= cc < w
                        tap = padded[:, rr + 1, cc + 1] if inside else np.full(c, fill)
                        value += wr * wc * tap
                out[s, :, i, j] = value
    return out


def fixed_params(b: int = 1, **values: float) -> AffineParams:
    """Affine parameters for b samples, identity except the given values."""
    base = {
        "angle": 0.0,
        "shear_x": 0.0,
        "shear_y": 0.0,
        "scale_x": 1.0,
        "scale_y": 1.0,
        "translate_x": 0.0,
        "translate_y": 0.0,
    }
    base.update(values)
    fields = {k: torch.full((b,), v, dtype=torch.float64) for k, v in base.items()}
    return AffineParams(**fields, applied=torch.ones(b, dtype=torch.bool))


# --- RandomAffine ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dtype", "tol"), [(torch.float64, 1e-10), (torch.float32, 2e-5), (torch.uint8, 0.501)]
)
def test_affine_matches_float64_reference(dtype: torch.dtype, tol: float) -> None:
    t = RandomAffine(
        degrees=40, translate=(0.2, 0.1), scale=(0.6, 1.4), shear=(20, 10), per_axis_scale=True
    )
    x = images(6, 2, 9, 13, dtype)  # non-square: the pixel/normalized conversion is per axis
    params = t.sample_params(6, gen(1))
    out = t(x, generator=gen(1))
    ref = reference_affine(x.numpy().astype(np.float64), params, 0.0)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_allclose(out.numpy().astype(np.float64), ref, rtol=0, atol=tol)


def test_affine_fill_matches_reference_and_reaches_corners() -> None:
    t = RandomAffine(degrees=(45, 45), fill=0.25)
    x = images(3, 1, 11, 11, torch.float64)
    out = t(x, generator=gen(0))
    ref = reference_affine(x.numpy(), t.sample_params(3, gen(0)), 0.25)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-10)
    assert torch.all(out[:, :, 0, 0] == 0.25)  # a 45° turn maps the corners from outside


def test_identity_parameters_return_the_input() -> None:
    for dtype in (torch.float32, torch.float64, torch.uint8):
        x = images(4, 3, 10, 7, dtype)
        assert torch.equal(RandomAffine()(x, generator=gen(0)), x)
        theta = affine_matrices(fixed_params(4), 10, 7)
        assert torch.equal(theta, torch.eye(2, 3, dtype=torch.float64).expand(4, 2, 3))
    # Resampling at identity (bypassing the shortcut) is within float rounding of the input.
    x = images(2, 1, 10, 7)
    theta = torch.eye(2, 3).expand(2, 2, 3)
    grid = F.affine_grid(theta, [2, 1, 10, 7], align_corners=False)
    torch.testing.assert_close(F.grid_sample(x, grid, align_corners=False), x, atol=1e-6, rtol=0)


def test_apply_affine_agrees_with_torch_affine_grid() -> None:
    # apply_affine builds its sampling grid itself (faster than affine_grid's batched matmul).
    x = images(5, 2, 9, 12)
    theta = RandomAffine(
        degrees=180, translate=(0.3, 0.3), scale=(0.5, 2), shear=30
    ).sample_matrices(5, 9, 12, gen(0))
    grid = F.affine_grid(theta.float(), [5, 2, 9, 12], align_corners=False)
    expected = F.grid_sample(x, grid, align_corners=False)
    torch.testing.assert_close(apply_affine(x, theta), expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("k", [1, 2, 3, -1])
def test_rotation_by_multiples_of_90_degrees_equals_rot90(k: int) -> None:
    angle = 90.0 * k
    t = RandomAffine(degrees=(angle, angle))
    for dtype in (torch.float32, torch.uint8):
        x = images(3, 2, 8, 8, dtype)
        expected = torch.rot90(x, k, dims=(-2, -1))  # k > 0: counter-clockwise as displayed
        out = t(x, generator=gen(0))
        if dtype == torch.uint8:
            assert torch.equal(out, expected)
        else:
            torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_translation_by_whole_pixels_shifts_content_right_and_down() -> None:
    x = images(2, 1, 6, 10, torch.uint8)
    theta = affine_matrices(fixed_params(2, translate_x=3 / 10, translate_y=-1 / 6), 6, 10)
    out = apply_affine(x, theta)
    expected = torch.zeros_like(x)
    expected[:, :, :5, 3:] = x[:, :, 1:, :7]
    assert torch.equal(out, expected)


def test_scale_two_magnifies_about_the_centre() -> None:
    x = torch.zeros(1, 1, 8, 8, dtype=torch.float64)
    x[..., 3:5, 3:5] = 1.0  # the central 2×2 block
    out = apply_affine(x, affine_matrices(fixed_params(scale_x=2.0, scale_y=2.0), 8, 8))
    assert torch.equal(out[..., 3:5, 3:5], torch.ones(1, 1, 2, 2, dtype=torch.float64))
    assert out[..., 2, 2].item() == pytest.approx(0.5625)  # (0.75)² of the block's edge
    assert out[..., 0, :].abs().max() == 0


def test_p_leaves_unselected_samples_exactly_unchanged() -> None:
    t = RandomAffine(degrees=30, translate=(0.1, 0.1), p=0.5)
    x = images(64, 1, 12, 12)
    params = t.sample_params(64, gen(5))
    out = t(x, generator=gen(5))
    applied = params.applied
    assert 10 < applied.sum() < 54
    assert torch.equal(out[~applied], x[~applied])
    assert all(not torch.equal(out[i], x[i]) for i in torch.nonzero(applied).flatten().tolist())
    assert torch.all(params.angle[~applied] == 0) and torch.all(params.scale_x[~applied] == 1)


def test_per_sample_parameters_differ_and_seeds_reproduce() -> None:
    t = RandomAffine(degrees=20, translate=(0.1, 0.1), scale=(0.8, 1.2), shear=10)
    params = t.sample_params(16, gen(0))
    for values in (params.angle, params.shear_x, params.scale_x, params.translate_y):
        assert values.unique().numel() == 16
    assert torch.equal(params.scale_x, params.scale_y)  # isotropic unless per_axis_scale
    x = images(16, 1, 14, 14, torch.uint8)
    a, b, c = (t(x, generator=gen(s)) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # The stream does not depend on the images: other content, same parameters.
    assert torch.equal(t.sample_matrices(16, 14, 14, gen(0)), affine_matrices(params, 14, 14))


def test_koch_augmentation_draws_the_papers_ranges() -> None:
    (t,) = koch_omniglot_augmentation().transforms
    assert isinstance(t, RandomAffine)
    n = 20000
    params = t.sample_params(n, gen(0))
    shear = math.degrees(0.3)
    for values, bound in (
        (params.angle, 10.0),
        (params.shear_x, shear),
        (params.shear_y, shear),
        (params.translate_x, 2 / 105),
        (params.translate_y, 2 / 105),
    ):
        assert values.abs().max() <= bound and values.abs().max() > 0.99 * bound
        assert (values == 0).double().mean() == pytest.approx(0.5, abs=0.02)
    for values in (params.scale_x, params.scale_y):
        moved = values != 1
        assert moved.double().mean() == pytest.approx(0.5, abs=0.02)
        assert values[moved].min() >= 0.8 and values[moved].max() <= 1.2
    # sx, sy are drawn separately; ρx and ρy are one component (included together).
    assert not torch.equal(params.scale_x, params.scale_y)
    assert torch.equal(params.shear_x == 0, params.shear_y == 0)
    # The four components are included independently: all four about 1/16 of the time.
    all_on = (params.angle != 0) & (params.shear_x != 0) & (params.scale_x != 1)
    all_on &= params.translate_x != 0
    assert all_on.double().mean() == pytest.approx(1 / 16, abs=0.01)
    # image_size keeps the shift at ±2 pixels on other image sizes.
    (pixel_t,) = koch_omniglot_augmentation(image_size=28).transforms
    assert pixel_t.translate == (2 / 28, 2 / 28)


def test_koch_augmentation_on_uint8_batch() -> None:
    aug = koch_omniglot_augmentation()
    x = images(8, 1, 105, 105, torch.uint8)
    out = aug(x, generator=gen(0))
    assert out.dtype == torch.uint8 and out.shape == x.shape
    assert torch.equal(out, aug(x, generator=gen(0)))
    assert "RandomAffine" in repr(aug) and "component_p=0.5" in repr(aug)


# --- flip, crop ------------------------------------------------------------------------------


def test_flip_matches_torch_flip_on_chosen_samples() -> None:
    t = RandomHorizontalFlip(p=0.5)
    x = images(32, 3, 5, 7, torch.uint8)
    mask = t.sample_mask(32, gen(2))
    out = t(x, generator=gen(2))
    assert 4 < mask.sum() < 28
    assert torch.equal(out[mask], torch.flip(x[mask], dims=(-1,)))
    assert torch.equal(out[~mask], x[~mask])
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(p=0.0)(x), x)


@pytest.mark.parametrize(("padding", "fill"), [(0, 0), (3, 9)])
def test_crop_matches_slicing_at_the_drawn_offsets(padding: int, fill: int) -> None:
    t = RandomCrop((6, 8), padding=padding, fill=fill)
    x = images(40, 2, 10, 9, torch.uint8)
    top, left = t.sample_offsets(40, 10, 9, gen(3))
    out = t(x, generator=gen(3))
    padded = F.pad(x, (padding,) * 4, value=fill)
    for s in range(40):
        r, c = int(top[s]), int(left[s])
        assert torch.equal(out[s], padded[s, :, r : r + 6, c : c + 8])
    assert out.shape == (40, 2, 6, 8)
    # Every offset 0..n can be drawn, none beyond.
    top, left = t.sample_offsets(2000, 10, 9, gen(4))
    assert set(top.tolist()) == set(range(10 + 2 * padding - 6 + 1))
    assert set(left.tolist()) == set(range(9 + 2 * padding - 8 + 1))


def test_crop_of_the_full_image_is_identity_and_seeds_reproduce() -> None:
    x = images(4, 1, 7, 7)
    assert torch.equal(RandomCrop(7)(x, generator=gen(0)), x)
    t = RandomCrop(5, padding=2)
    x = images(16, 1, 7, 7)
    a, b, c = (t(x, generator=gen(s)) for s in (0, 0, 1))
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- ToFloat, Normalize, Resize, Compose -----------------------------------------------------


def test_to_float_and_uint8_round_trip() -> None:
    x = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    y = ToFloat()(x)
    assert y.dtype == torch.float32 and y.min() == 0 and y.max() == 1
    assert torch.equal((y * 255).round().to(torch.uint8), x)
    f = images(2, 1, 3, 3, torch.float64)
    assert ToFloat()(f) is f


def test_normalize_matches_float64_formula() -> None:
    x = images(3, 3, 4, 5, torch.float64)
    mean, std = (0.1, 0.5, 0.9), (0.2, 1.0, 3.0)
    out = Normalize(mean, std)(x)
    ref = (x.numpy() - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-15, atol=0)
    single = Normalize(0.5, 0.25)(x.float())
    np.testing.assert_allclose(single.numpy(), (x.numpy() - 0.5) / 0.25, atol=1e-6)


def test_normalize_errors() -> None:
    with pytest.raises(ConfigError, match=r"std must be finite and > 0.*0\.0"):
        Normalize((0.5, 0.5), (1.0, 0.0))
    with pytest.raises(ConfigError, match="mean has 3 channels and std 2"):
        Normalize((0.5, 0.5, 0.5), (1.0, 1.0))
    with pytest.raises(ConfigError, match="mean has 3 values but the images have 1 channels"):
        Normalize((0.5, 0.5, 0.5), (1.0, 1.0, 1.0))(images(1, 1, 2, 2))
    with pytest.raises(DataError, match="put ToFloat"):
        Normalize(0.5, 0.5)(images(1, 1, 2, 2, torch.uint8))


def reference_resize_antialias(x: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """PIL-style separable triangle filter: the kernel widens by the shrink factor and its
    weights are renormalized over the taps inside the image."""

    def weights(n_in: int, n_out: int) -> np.ndarray:
        scale = n_in / n_out
        support = max(scale, 1.0)
        m = np.zeros((n_out, n_in))
        for i in range(n_out):
            centre = (i + 0.5) * scale
            for j in range(n_in):
                m[i, j] = max(0.0, 1 - abs(j + 0.5 - centre) / support)
        return m / m.sum(axis=1, keepdims=True)

    wh, ww = weights(x.shape[-2], out_h), weights(x.shape[-1], out_w)
    return np.einsum("ih,bchw,jw->bcij", wh, x, ww)


@pytest.mark.parametrize(("factor", "size"), [(2, (12, 18)), (3, (12, 18)), (2.5, (10, 15))])
def test_resize_antialias_matches_triangle_filter(factor: float, size: tuple[int, int]) -> None:
    h, w = size
    x = images(2, 2, h, w, torch.float64)
    out_h, out_w = int(h / factor), int(w / factor)
    out = Resize((out_h, out_w))(x)
    ref = reference_resize_antialias(x.numpy(), out_h, out_w)
    np.testing.assert_allclose(out.numpy(), ref, atol=1e-12)


def test_resize_halving_without_antialias_is_the_2x2_box_average() -> None:
    x = images(2, 3, 10, 14, torch.float64)
    box = x.numpy().reshape(2, 3, 5, 2, 7, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(Resize((5, 7), antialias=False)(x).numpy(), box, atol=1e-12)
    # With antialias the 2x kernel is [1, 3, 3, 1] / 8: wider than the box, so not equal.
    assert not np.allclose(Resize((5, 7))(x).numpy(), box, atol=1e-3)


def test_resize_uint8_and_identity_size() -> None:
    x = images(2, 1, 12, 12, torch.uint8)
    assert torch.equal(Resize(12)(x), x)
    out = Resize(6)(x)
    ref = reference_resize_antialias(x.numpy().astype(np.float64), 6, 6)
    assert out.dtype == torch.uint8 and out.shape == (2, 1, 6, 6)
    assert np.abs(out.numpy().astype(np.float64) - ref).max() <= 0.5 + 1e-3


def test_compose_applies_in_order_with_one_generator() -> None:
    flip, crop = RandomHorizontalFlip(0.5), RandomCrop(4, padding=1)
    x = images(8, 1, 6, 6, torch.uint8)
    g = gen(0)
    expected = crop(flip(x, generator=g), generator=g)
    out = Compose([flip, crop])(x, generator=gen(0))
    assert torch.equal(out, expected)
    assert repr(Compose([flip, crop])) == (
        "Compose([\n    RandomHorizontalFlip(p=0.5),\n"
        "    RandomCrop(size=(4, 4), padding=1, fill=0.0),\n])"
    )


def test_no_nan_on_constant_and_zero_images() -> None:
    pipeline = Compose(
        [
            RandomAffine(degrees=30, translate=(0.1, 0.1), scale=(0.5, 2.0), shear=30, fill=0.5),
            RandomCrop(20, padding=2),
            RandomHorizontalFlip(),
            Resize(10),
            ToFloat(),
            Normalize(0.5, 0.25),
        ]
    )
    for value in (0, 1, 255):
        x = torch.full((8, 1, 24, 24), value, dtype=torch.uint8)
        assert torch.isfinite(pipeline(x, generator=gen(0))).all()
    assert torch.isfinite(pipeline(torch.zeros(8, 1, 24, 24), generator=gen(0))).all()


# --- argument errors -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: RandomAffine(degrees=-5), r"degrees must be >= 0 .*got -5"),
        (lambda: RandomAffine(degrees=(10, -10)), r"degrees=\(lo, hi\) needs lo <= hi"),
        (
            lambda: RandomAffine(scale=(0, 1)),
            r"scale=\(s0, s1\) needs 0 < s0 <= s1, got scale=\(0, 1\)",
        ),
        (lambda: RandomAffine(scale=(1.2, 0.8)), r"0 < s0 <= s1"),
        (lambda: RandomAffine(translate=(0.1, 1.5)), r"translate fractions must be in \[0, 1\]"),
        (
            lambda: RandomAffine(shear=50),
            r"shear angles must be in \[0, 45\) degrees, got shear=50",
        ),
        (lambda: RandomAffine(shear=(-1, 0)), r"shear angles must be in \[0, 45\)"),
        (
            lambda: RandomAffine(p=1.5),
            r"RandomAffine: p must be a probability in \[0, 1\], got 1.5",
        ),
        (lambda: RandomAffine(component_p=-0.1), r"component_p must be a probability"),
        (lambda: RandomAffine(fill=float("nan")), r"fill must be a finite number"),
        (lambda: RandomHorizontalFlip(p=2), r"RandomHorizontalFlip: p must be a probability"),
        (lambda: RandomCrop(0), r"RandomCrop: size must be a positive integer .*got 0"),
        (lambda: RandomCrop(4, padding=-1), r"padding must be an integer >= 0, got -1"),
        (lambda: Resize((4, 0)), r"Resize: size must be a positive integer"),
        (lambda: koch_omniglot_augmentation(p=3), r"component_p must be a probability"),
        (lambda: Compose([1]), r"transforms\[0\] is not callable"),
    ],
)
def test_argument_errors_name_the_argument_value_and_range(build, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build()


def test_crop_larger_than_padded_image_and_bad_inputs() -> None:
    with pytest.raises(
        ConfigError, match=r"size=\(9, 9\) is larger than the padded image \(8, 8\)"
    ):
        RandomCrop(9, padding=1)(images(1, 1, 6, 6))
    assert RandomCrop(8, padding=1)(images(1, 1, 6, 6)).shape == (1, 1, 8, 8)
    with pytest.raises(DataError, match=r"shape \(B, C, H, W\), got \(6, 6\)"):
        RandomAffine()(torch.zeros(6, 6))
    with pytest.raises(DataError, match=r"uint8 or float images, got torch\.int64"):
        RandomHorizontalFlip()(torch.zeros(1, 1, 2, 2, dtype=torch.int64))


@pytest.mark.parametrize("shape", [(2, 1, 0, 5), (2, 1, 5, 0), (2, 0, 5, 5)])
@pytest.mark.parametrize(
    "transform",
    [ToFloat(), Resize(4), RandomAffine(degrees=10), RandomCrop(4), RandomHorizontalFlip()],
    ids=lambda t: type(t).__name__,
)
def test_images_without_pixels_are_refused_by_name(shape: tuple, transform) -> None:
    with pytest.raises(DataError, match=rf"{type(transform).__name__}: images of shape .* no pix"):
        transform(torch.zeros(shape, dtype=torch.uint8))


def test_an_empty_batch_passes_through() -> None:
    empty = torch.zeros(0, 1, 6, 6, dtype=torch.uint8)
    assert RandomAffine(degrees=10)(ToFloat()(empty)).shape == (0, 1, 6, 6)
