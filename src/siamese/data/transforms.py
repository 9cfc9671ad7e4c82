"""Batch image transforms in plain torch: one call transforms a whole batch, each sample with
its own random parameters.

Every transform takes images x of shape (B, C, H, W), uint8 or float, and is called as
`transform(x, generator=g)`. All randomness comes from `generator` (a `torch.Generator`; None
uses torch's default one), and every call draws the same number of random numbers whatever the
images hold, so a seeded run is reproducible. Nothing in a call reads a tensor value back to
Python (no `.item()`, no branching on data), so transforms on a GPU never wait for it.

uint8 images stay uint8: geometric transforms compute in float32 on the 0..255 values and round
back, so identity parameters give the input exactly.

`koch_omniglot_augmentation()` is the affine augmentation of Koch et al. (2015), "Siamese Neural
Networks for One-shot Image Recognition".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from siamese.errors import ConfigError, DataError

__all__ = [
    "AffineParams",
    "Compose",
    "Normalize",
    "RandomAffine",
    "RandomCrop",
    "RandomHorizontalFlip",
    "Resize",
    "ToFloat",
    "Transform",
    "affine_matrices",
    "apply_affine",
    "koch_omniglot_augmentation",
]

# Shear matrices [[1, tan ρx], [tan ρy, 1]] stay invertible (det = 1 − tan ρx tan ρy > 0) only
# while both shears are below 45°.
_MAX_SHEAR_DEG = 45.0


class Transform:
    """Base of the transforms: `__call__(x, generator=None)` maps (B, C, H, W) to (B, C, H', W').

    Subclasses set `_repr_fields` to the attribute names their repr shows.
    """

    _repr_fields: tuple[str, ...] = ()

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._repr_fields)
        return f"{type(self).__name__}({args})"


class Compose(Transform):
    """Apply transforms in order, passing the same generator to each."""

    def __init__(self, transforms: Sequence[Callable[..., torch.Tensor]]) -> None:
        for i, t in enumerate(transforms):
            if not callable(t):
                raise ConfigError(f"Compose: transforms[{i}] is not callable, got {t!r}")
        self.transforms = list(transforms)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        for t in self.transforms:
            x = t(x, generator=generator)
        return x

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])" if inner else "Compose([])"


class ToFloat(Transform):
    """uint8 images in [0, 255] -> float32 in [0, 1]; float images pass through unchanged."""

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_images("ToFloat", x)
        if x.dtype == torch.uint8:
            return x.to(torch.float32) / 255.0
        return x


class Normalize(Transform):
    """(x − mean) / std per channel, on float images (B, C, H, W).

    Args:
        mean: one number for every channel, or one per channel.
        std: one positive number for every channel, or one per channel.
    """

    _repr_fields = ("mean", "std")

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        self.mean = _as_float_tuple("Normalize", "mean", mean)
        self.std = _as_float_tuple("Normalize", "std", std)
        bad = [s for s in self.std if not s > 0 or not math.isfinite(s)]
        if bad:
            raise ConfigError(f"Normalize: std must be finite and > 0, got std={self.std}")
        if not all(math.isfinite(m) for m in self.mean):
            raise ConfigError(f"Normalize: mean must be finite, got mean={self.mean}")
        if len(self.mean) != len(self.std) and 1 not in (len(self.mean), len(self.std)):
            raise ConfigError(
                f"Normalize: mean has {len(self.mean)} channels and std {len(self.std)}; "
                "give both the same length (or one number for all channels)"
            )

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_images("Normalize", x)
        if not x.is_floating_point():
            raise DataError(
                f"Normalize: expects float images, got {x.dtype}; put ToFloat() before it"
            )
        channels = x.shape[1]
        for name, values in (("mean", self.mean), ("std", self.std)):
            if len(values) not in (1, channels):
                raise ConfigError(
                    f"Normalize: {name} has {len(values)} values but the images have "
                    f"{channels} channels; give one value per channel or a single number"
                )
        mean = torch.tensor(self.mean, dtype=x.dtype).to(x.device).view(-1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype).to(x.device).view(-1, 1, 1)
        return (x - mean) / std


class Resize(Transform):
    """Bilinear resize of every image to `size`.

    Args:
        size: output (height, width), or one number for a square.
        antialias: low-pass filter when shrinking (a triangle filter as wide as the scale
            factor, like PIL), so thin strokes do not alias away; no effect when enlarging.
    """

    _repr_fields = ("size", "antialias")

    def __init__(self, size: int | tuple[int, int], antialias: bool = True) -> None:
        self.size = _as_size("Resize", "size", size)
        self.antialias = bool(antialias)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, *size), same dtype."""
        _check_images("Resize", x)
        xf = _to_compute_dtype(x)
        out = F.interpolate(
            xf, size=self.size, mode="bilinear", align_corners=False, antialias=self.antialias
        )
        return _from_compute_dtype(out, x.dtype)


class RandomHorizontalFlip(Transform):
    """Mirror each image left-right with probability p, independently per sample."""

    _repr_fields = ("p",)

    def __init__(self, p: float = 0.5) -> None:
        self.p = _check_probability("RandomHorizontalFlip", "p", p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        _check_images("RandomHorizontalFlip", x)
        flip = self.sample_mask(x.shape[0], generator, x.device)
        return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)

    def sample_mask(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """(batch,) bool: which samples a call with this generator state flips."""
        u = torch.rand(batch, generator=generator, device=_draw_device(generator, device))
        return (u < self.p).to(device)


class RandomCrop(Transform):
    """Crop every image to `size` at its own random offset, after optional padding.

    Args:
        size: output (height, width), or one number for a square.
        padding: pixels of `fill` added on every side before cropping.
        fill: value of the padding, in the images' units (0..255 for uint8).
    """

    _repr_fields = ("size", "padding", "fill")

    def __init__(self, size: int | tuple[int, int], padding: int = 0, fill: float = 0) -> None:
        self.size = _as_size("RandomCrop", "size", size)
        if isinstance(padding, bool) or not isinstance(padding, int) or padding < 0:
            raise ConfigError(f"RandomCrop: padding must be an integer >= 0, got {padding!r}")
        self.padding = padding
        self.fill = _check_finite("RandomCrop", "fill", fill)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, *size), same dtype."""
        _check_images("RandomCrop", x)
        b, c, h, w = x.shape
        top, left = self.sample_offsets(b, h, w, generator, x.device)
        if self.padding:
            p = self.padding
            x = F.pad(x, (p, p, p, p), mode="constant", value=self.fill)
        ch, cw = self.size
        # Two gathers (rows, then columns) crop every sample at its own offset in one batched
        # operation, with no per-sample Python loop.
        rows = top.view(b, 1, 1, 1) + torch.arange(ch, device=x.device).view(1, 1, ch, 1)
        x = x.gather(2, rows.expand(b, c, ch, x.shape[3]))
        cols = left.view(b, 1, 1, 1) + torch.arange(cw, device=x.device).view(1, 1, 1, cw)
        return x.gather(3, cols.expand(b, c, ch, cw))

    def sample_offsets(
        self,
        batch: int,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(top, left), each (batch,) int64: the crop's corner in the padded image that a call
        on (batch, C, height, width) images with this generator state uses."""
        ch, cw = self.size
        ph, pw = height + 2 * self.padding, width + 2 * self.padding
        if ch > ph or cw > pw:
            raise ConfigError(
                f"RandomCrop: size={self.size} is larger than the padded image "
                f"({ph}, {pw}) = ({height}, {width}) + 2 × padding={self.padding}; "
                "crop size must be <= image size + 2 × padding"
            )
        u = torch.rand(
            batch,
            2,
            generator=generator,
            device=_draw_device(generator, device),
            dtype=torch.float64,
        )
        limits = torch.tensor([ph - ch, pw - cw], dtype=torch.float64, device=u.device)
        # floor(u × (n + 1)) is uniform on 0..n; the clamp guards the u → 1 rounding edge.
        offsets = torch.minimum(torch.floor(u * (limits + 1)), limits).to(torch.int64).to(device)
        return offsets[:, 0], offsets[:, 1]


@dataclass(frozen=True)
class AffineParams:
    """Per-sample affine parameters, each a (B,) float64 tensor (applied: bool).

    The forward map, in pixels about the image centre with x right and y down, is
    p_out = R(angle) · Shear(shear_x, shear_y) · diag(scale_x, scale_y) · p_in + t, with
    R(θ) = [[cos θ, sin θ], [−sin θ, cos θ]] (positive angles turn the image counter-clockwise
    as displayed), Shear = [[1, tan shear_x], [tan shear_y, 1]] and
    t = (translate_x × width, translate_y × height) (positive moves content right and down).
    Samples with applied=False hold the identity values.
    """

    angle: torch.Tensor  # degrees
    shear_x: torch.Tensor  # degrees
    shear_y: torch.Tensor  # degrees
    scale_x: torch.Tensor
    scale_y: torch.Tensor
    translate_x: torch.Tensor  # fraction of the width
    translate_y: torch.Tensor  # fraction of the height
    applied: torch.Tensor


def affine_matrices(params: AffineParams, height: int, width: int) -> torch.Tensor:
    """(B, 2, 3) float64 matrices for `F.affine_grid(..., align_corners=False)`: each maps an
    output position in normalized coordinates ([-1, 1] across the image's outer edges) to the
    input position to sample, i.e. the inverse of the forward map `AffineParams` describes.

    Built in float64 and in closed form so that identity parameters give exactly [[1, 0, 0],
    [0, 1, 0]] (which `apply_affine` recognizes and skips).
    """
    angle = torch.deg2rad(params.angle)
    cos, sin = torch.cos(angle), torch.sin(angle)
    kx, ky = torch.tan(torch.deg2rad(params.shear_x)), torch.tan(torch.deg2rad(params.shear_y))
    sx, sy = params.scale_x, params.scale_y
    # A = R · Shear · S, entry by entry.
    a = (cos + sin * ky) * sx
    b = (cos * kx + sin) * sy
    c = (-sin + cos * ky) * sx
    d = (-sin * kx + cos) * sy
    det = a * d - b * c
    inv_a, inv_b, inv_c, inv_d = d / det, -b / det, -c / det, a / det
    # Normalized coords are pixels × (2/W, 2/H): conjugating A⁻¹ by that diagonal rescales only
    # the off-diagonal entries, by H/W and W/H (so the diagonal stays exact).
    l00, l01, l10, l11 = inv_a, inv_b * (height / width), inv_c * (width / height), inv_d
    tx, ty = 2 * params.translate_x, 2 * params.translate_y
    row0 = torch.stack([l00, l01, -(l00 * tx + l01 * ty)], dim=1)
    row1 = torch.stack([l10, l11, -(l10 * tx + l11 * ty)], dim=1)
    return torch.stack([row0, row1], dim=1)


def apply_affine(x: torch.Tensor, theta: torch.Tensor, fill: float = 0.0) -> torch.Tensor:
    """Warp every image by its own matrix: bilinear, align_corners=False, outside = `fill`.

    Args:
        x: (B, C, H, W) uint8 or float images.
        theta: (B, 2, 3) output-to-input matrices in normalized coordinates (`affine_matrices`).
        fill: value of pixels mapped from outside the image, in the images' units.
    Returns:
        (B, C, H, W), x's dtype (uint8 rounded and clamped). Samples whose matrix is exactly the
        identity are returned unchanged, not resampled.
    """
    _check_images("apply_affine", x)
    if theta.shape != (x.shape[0], 2, 3):
        raise DataError(
            f"apply_affine: theta must have shape ({x.shape[0]}, 2, 3), got {tuple(theta.shape)}"
        )
    xf = _to_compute_dtype(x)
    theta = theta.to(dtype=xf.dtype).to(device=x.device)
    grid = _affine_grid(theta, xf.shape[2], xf.shape[3])
    # grid_sample pads with zeros; warping x − fill and adding fill back pads with fill instead,
    # blended bilinearly at the edges exactly as a fill-valued border would be.
    shifted = xf - fill if fill != 0 else xf
    out = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    if fill != 0:
        out = out + fill
    out = _from_compute_dtype(out, x.dtype)
    identity = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=theta.dtype, device=x.device)
    keep = (theta == identity).flatten(1).all(dim=1)
    return torch.where(keep.view(-1, 1, 1, 1), x, out)


class RandomAffine(Transform):
    """Random rotation, shear, scale and translation, one matrix per sample, one resampling.

    Args:
        degrees: rotation angle uniform in [−degrees, degrees], or in [lo, hi] for a pair.
            Positive turns counter-clockwise as displayed.
        translate: (fx, fy): shifts uniform in ±fx × width and ±fy × height pixels.
        scale: (s0, s1): scale factors uniform in [s0, s1], 0 < s0 <= s1.
        shear: shear angles in degrees: one number s gives ρx and ρy each uniform in [−s, s]
            (Koch et al.'s two shears); a pair (sx, sy) gives ρx in [−sx, sx] and ρy in
            [−sy, sy] (so (s, 0) shears along x only). Each must be in [0, 45).
        fill: value of pixels mapped from outside the image, in the images' units.
        p: probability that a sample is transformed at all (else returned exactly).
        per_axis_scale: draw scale_x and scale_y independently (Koch's sx, sy) instead of one
            isotropic factor.
        component_p: probability that each of the four components (rotation, shear, scale,
            translation) is included, independently per sample and component (Koch: 0.5).
    """

    _repr_fields = (
        "degrees",
        "translate",
        "scale",
        "shear",
        "fill",
        "p",
        "per_axis_scale",
        "component_p",
    )

    def __init__(
        self,
        degrees: float | tuple[float, float] = 0,
        translate: tuple[float, float] = (0, 0),
        scale: tuple[float, float] = (1, 1),
        shear: float | tuple[float, float] = 0,
        fill: float = 0.0,
        p: float = 1.0,
        per_axis_scale: bool = False,
        component_p: float = 1.0,
    ) -> None:
        name = "RandomAffine"
        if isinstance(degrees, Sequence):
            lo, hi = _as_pair(name, "degrees", degrees)
            if not lo <= hi:
                raise ConfigError(f"{name}: degrees=(lo, hi) needs lo <= hi, got {degrees!r}")
            self.degrees: tuple[float, float] = (lo, hi)
        else:
            deg = _check_finite(name, "degrees", degrees)
            if deg < 0:
                raise ConfigError(
                    f"{name}: degrees must be >= 0 (angles drawn in [-degrees, degrees]), "
                    f"got {degrees!r}"
                )
            self.degrees = (-deg, deg)
        fx, fy = _as_pair(name, "translate", translate)
        if not (0 <= fx <= 1 and 0 <= fy <= 1):
            raise ConfigError(
                f"{name}: translate fractions must be in [0, 1], got translate={translate!r}"
            )
        self.translate = (fx, fy)
        s0, s1 = _as_pair(name, "scale", scale)
        if not (0 < s0 <= s1):
            raise ConfigError(f"{name}: scale=(s0, s1) needs 0 < s0 <= s1, got scale={scale!r}")
        self.scale = (s0, s1)
        if isinstance(shear, Sequence):
            shx, shy = _as_pair(name, "shear", shear)
        else:
            shx = shy = _check_finite(name, "shear", shear)
        if not (0 <= shx < _MAX_SHEAR_DEG and 0 <= shy < _MAX_SHEAR_DEG):
            raise ConfigError(
                f"{name}: shear angles must be in [0, {_MAX_SHEAR_DEG:g}) degrees, got shear={shear!r}"
            )
        self.shear = (shx, shy)
        self.fill = _check_finite(name, "fill", fill)
        self.p = _check_probability(name, "p", p)
        self.per_axis_scale = bool(per_axis_scale)
        self.component_p = _check_probability(name, "component_p", component_p)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W), same dtype."""
        _check_images("RandomAffine", x)
        b, _, h, w = x.shape
        # The matrices are drawn and built in float64 where the generator is (the host for a
        # GPU batch: MPS has no float64), then cast and moved by `apply_affine`.
        theta = self.sample_matrices(b, h, w, generator, None)
        return apply_affine(x, theta, self.fill)

    def sample_params(
        self,
        batch: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> AffineParams:
        """The parameters a call on `batch` images with this generator state draws.

        Always draws one (batch, 12) block of uniforms, whatever the settings, so the stream
        of random numbers does not depend on which components are enabled.
        """
        u = torch.rand(
            batch,
            12,
            generator=generator,
            device=_draw_device(generator, device),
            dtype=torch.float64,
        )
        u = u.to(device) if device is not None else u

        def uniform(col: int, lo: float, hi: float) -> torch.Tensor:
            return lo + u[:, col] * (hi - lo)

        applied = u[:, 7] < self.p
        on = u[:, 8:12] < self.component_p
        rotate, shear, scale, translate = (on[:, i] & applied for i in range(4))

        def gate(mask: torch.Tensor, value: torch.Tensor, identity: float) -> torch.Tensor:
            return torch.where(mask, value, torch.full_like(value, identity))

        s0, s1 = self.scale
        scale_x = uniform(3, s0, s1)
        scale_y = uniform(4, s0, s1) if self.per_axis_scale else scale_x
        fx, fy = self.translate
        shx, shy = self.shear
        return AffineParams(
            angle=gate(rotate, uniform(0, *self.degrees), 0.0),
            shear_x=gate(shear, uniform(1, -shx, shx), 0.0),
            shear_y=gate(shear, uniform(2, -shy, shy), 0.0),
            scale_x=gate(scale, scale_x, 1.0),
            scale_y=gate(scale, scale_y, 1.0),
            translate_x=gate(translate, uniform(5, -fx, fx), 0.0),
            translate_y=gate(translate, uniform(6, -fy, fy), 0.0),
            applied=applied,
        )

    def sample_matrices(
        self,
        batch: int,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> torch.Tensor:
        """(batch, 2, 3) float64: the `affine_matrices` a call on (batch, C, height, width)
        images with this generator state uses."""
        return affine_matrices(self.sample_params(batch, generator, device), height, width)


def koch_omniglot_augmentation(image_size: int = 105, p: float = 0.5) -> Compose:
    """The affine distortions Koch et al. (2015) trained their Omniglot Siamese network with.

    Section 4.2 of the paper: T = (θ, ρx, ρy, sx, sy, tx, ty) with θ ∈ [−10.0, 10.0] degrees,
    ρx, ρy ∈ [−0.3, 0.3], sx, sy ∈ [0.8, 1.2] and tx, ty ∈ [−2, 2] pixels on 105×105 images,
    "each of these components of the transformation included with probability .5".

    How the paper's numbers are read here:
      - ρx, ρy: the paper gives no unit; taken as radians (0.3 rad = 17.19°), as most
        re-implementations do. The shear matrix entry is then tan(0.3) = 0.309, within 3% of
        reading 0.3 as the matrix entry itself.
      - components: rotation, shear (ρx and ρy together), scale (sx and sy together) and
        translation (tx and ty together), each included with probability `p` per sample.
      - translation: ±2 pixels at `image_size` (a fraction 2 / image_size of each side). Leave
        105 to keep Koch's relative shift on other sizes, or pass the real size for ±2 px.

    Args:
        image_size: side in pixels at which the translation is ±2 pixels.
        p: probability that each component is included.
    Returns:
        Compose holding one RandomAffine (one resampling per image), for (B, C, H, W) uint8 or
        float images.
    """
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ConfigError(
            f"koch_omniglot_augmentation: image_size must be an integer >= 1, got {image_size!r}"
        )
    shift = 2.0 / image_size
    return Compose(
        [
            RandomAffine(
                degrees=10.0,
                translate=(shift, shift),
                scale=(0.8, 1.2),
                shear=math.degrees(0.3),
                per_axis_scale=True,
                component_p=p,
            )
        ]
    )


# --- helpers ---------------------------------------------------------------------------------


def _check_images(name: str, x: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim != 4:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise DataError(f"{name}: expects images of shape (B, C, H, W), got {shape}")
    if x.dtype != torch.uint8 and not x.is_floating_point():
        raise DataError(f"{name}: expects uint8 or float images, got {x.dtype}")
    if x.shape[1] == 0 or x.shape[2] == 0 or x.shape[3] == 0:
        raise DataError(f"{name}: images of shape {tuple(x.shape)} have no pixels")


def _to_compute_dtype(x: torch.Tensor) -> torch.Tensor:
    # float16/bfloat16 kernels are missing or lossy on CPU: compute those in float32.
    if x.dtype in (torch.float32, torch.float64):
        return x
    return x.to(torch.float32)


def _from_compute_dtype(out: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # `out` is always a fresh result of the caller's resampling, so rounding in place is safe.
    if dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out.to(dtype)


def _affine_grid(theta: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """(B, H, W, 2) sampling grid, as `F.affine_grid(theta, ..., align_corners=False)` gives.

    affine_grid multiplies a (B, H·W, 3) grid by theta with a batched matmul of inner size 3,
    most of RandomAffine's time on CPU. The grid is separable (column term + row term), so it
    is built as (B, 2, H, W) with one broadcast add along contiguous rows and handed to
    grid_sample as a permuted view (grid_sample takes strided grids; no copy).
    """
    b = theta.shape[0]
    kw = {"dtype": theta.dtype, "device": theta.device}
    # Pixel centres in normalized coordinates: (2j + 1) / W − 1.
    xs = (torch.arange(width, **kw) * 2 + 1) / width - 1
    ys = (torch.arange(height, **kw) * 2 + 1) / height - 1
    cols = theta[:, :, 0].view(b, 2, 1, 1) * xs.view(1, 1, 1, width) + theta[:, :, 2].view(
        b, 2, 1, 1
    )
    rows = theta[:, :, 1].view(b, 2, 1, 1) * ys.view(1, 1, height, 1)
    return (cols + rows).permute(0, 2, 3, 1)


def _draw_device(
    generator: torch.Generator | None, device: torch.device | str | None
) -> torch.device | str | None:
    # A generator only draws on its own device; the few numbers are moved to the images after.
    return generator.device if generator is not None else device


def _check_finite(name: str, arg: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ConfigError(f"{name}: {arg} must be a finite number, got {value!r}")
    return float(value)


def _check_probability(name: str, arg: str, value: object) -> float:
    v = _check_finite(name, arg, value)
    if not 0 <= v <= 1:
        raise ConfigError(f"{name}: {arg} must be a probability in [0, 1], got {value!r}")
    return v


def _as_pair(name: str, arg: str, value: object) -> tuple[float, float]:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        raise ConfigError(f"{name}: {arg} must be a pair of numbers, got {value!r}")
    return _check_finite(name, arg, value[0]), _check_finite(name, arg, value[1])


def _as_float_tuple(name: str, arg: str, value: float | Sequence[float]) -> tuple[float, ...]:
    values = tuple(value) if isinstance(value, Sequence) else (value,)
    if not values:
        raise ConfigError(f"{name}: {arg} must not be empty")
    return tuple(_check_finite(name, arg, v) for v in values)


def _as_size(name: str, arg: str, value: int | tuple[int, int]) -> tuple[int, int]:
    pair = (value, value) if not isinstance(value, Sequence) else tuple(value)
    if len(pair) != 2 or not all(
        isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in pair
    ):
        raise ConfigError(
            f"{name}: {arg} must be a positive integer or a pair (height, width) of them, "
            f"got {value!r}"
        )
    return pair[0], pair[1]
