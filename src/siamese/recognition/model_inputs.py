"""What a user hands a recogniser — image files, PIL images, arrays, tensors — turned into the
model's input: uint8 (N, C, H, W) at the model's size and channel count.

Files go through the same decoder as training folders (`siamese.data.image_files`: EXIF
orientation applied, 16-bit, palette and transparent images converted), and every other kind
through the same conversion, so an image gives the same pixels whichever way it arrives.

Nothing here imports torch (`OnnxRecognizer` runs without it): the inputs come back as numpy
arrays, which `Recognizer` turns into tensors; a torch tensor given as an image is read through
its own methods.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import numpy as np
from PIL import Image

from siamese.data.image_files import (
    BadImageError,
    decode_image,
    decode_image_bytes,
    image_array,
)
from siamese.errors import ConfigError, DataError, NoFaceError
from siamese.faces.preprocessing import NO_FACE, FaceStep, face_step, no_face_reason

if TYPE_CHECKING:
    import torch

ImageInput = Union[str, Path, bytes, Image.Image, np.ndarray, "torch.Tensor"]
"""One image: a file path; the bytes of an image file (an upload); a PIL image; a numpy array
(H, W) or (H, W, C) as image libraries lay them out; or a torch tensor (C, H, W) or (H, W).
Arrays and tensors hold uint8 values or floats in [0, 1]. A 4-D array or tensor (N, H, W, C) /
(N, C, H, W) is a batch of images."""


@dataclass(frozen=True)
class Preprocessing:
    """How a model's inputs are made from images.

    Attributes:
        input_shape: (C, H, W) the model takes (or any other shape, for non-image models).
        resize: how an image of another aspect ratio reaches (H, W): "stretch", "crop" (centre)
            or "pad" (`siamese.data.image_files.decode_image`).
        face: the face step the model was trained behind (each image becomes its largest
            face, detected and aligned as in training), or None.
    """

    input_shape: tuple[int, ...]
    resize: str = "stretch"
    face: FaceStep | None = None

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> Preprocessing:
        """The preprocessing a model.json declares ("input_shape", "preprocessing")."""
        shape = tuple(int(v) for v in description["input_shape"])
        declared = description.get("preprocessing") or {}
        face = declared.get("face")
        return cls(shape, str(declared.get("resize", "stretch")), face_step(face))

    @property
    def is_image(self) -> bool:
        return len(self.input_shape) == 3 and self.input_shape[0] in (1, 3)


def is_tensor(value: Any) -> bool:
    """Whether `value` is a torch tensor, without importing torch (a process that never
    imported it holds none)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def as_image_list(images: ImageInput | Sequence[ImageInput]) -> list[ImageInput]:
    """A list of single images from one image, a batch array/tensor, or a sequence of them."""
    if isinstance(images, (str, Path, bytes, Image.Image)):
        return [images]
    if isinstance(images, np.ndarray):
        return list(images) if images.ndim == 4 else [images]
    if is_tensor(images):
        return list(images) if images.ndim == 4 else [images]
    if isinstance(images, Sequence):
        out: list[ImageInput] = []
        for item in images:
            if (isinstance(item, np.ndarray) or is_tensor(item)) and item.ndim == 4:
                out.extend(list(item))
            else:
                out.append(item)
        return out
    raise DataError(
        f"cannot read images from a {type(images).__name__}: give file paths, PIL images, "
        "numpy arrays (H, W[, C]) or torch tensors (C, H, W), or a list of them"
    )


def describe(image: ImageInput, index: int) -> str:
    """How messages and results name an input: its path, or "image N" (1-based)."""
    return str(image) if isinstance(image, (str, Path)) else f"image {index + 1}"


@dataclass(frozen=True)
class PreparedImages:
    """Images turned into model inputs: the first step of recognition (prepare → embed →
    decide), the one that runs on the CPU away from the model.

    Attributes:
        given: the images as the caller gave them (`as_image_list`).
        sources: how answers name each given image (its path, "image N", or the caller's).
        x: (R, *input_shape) uint8 model inputs, one row per face (or per image, without a
            face step).
        image: (R,) for row r, the index of the given image it comes from.
        boxes: with every face asked for, row r's [left, top, right, bottom] in its photo;
            else None.
    """

    given: list[ImageInput]
    sources: list[str]
    x: np.ndarray
    image: list[int]
    boxes: list[list[float]] | None = None

    @property
    def no_face(self) -> list[int]:
        """Indices of the given images that gave no row (no face found; left out)."""
        found = set(self.image)
        return [i for i in range(len(self.given)) if i not in found]

    def require_faces(self, face: FaceStep | None) -> None:
        """Refuse images in which the model's face step (`face`) found no face.

        Raises:
            NoFaceError: naming them, with why and what to try.
        """
        missing = self.no_face
        if missing:
            reason = no_face_reason(face) if face is not None else NO_FACE
            names = ", ".join(self.sources[i] for i in missing[:5])
            raise NoFaceError(f"{names}: {reason}")

    def embedded(self, z: Any) -> EmbeddedImages:
        """These images with their (R, D) embeddings (a numpy array or a CPU tensor)."""
        z = np.asarray(z.detach().cpu() if hasattr(z, "detach") else z, dtype=np.float32)
        if z.ndim != 2 or z.shape[0] != self.x.shape[0]:
            raise ValueError(f"expected ({self.x.shape[0]}, D) embeddings, got {z.shape}")
        return EmbeddedImages(self, z)


@dataclass(frozen=True)
class EmbeddedImages:
    """Prepared images and their embeddings: what a gallery decides on.

    Attributes:
        prepared: the images, their names and which rows come from which image.
        z: (R, D) float32 embeddings, row r of `prepared.x`'s.
    """

    prepared: PreparedImages
    z: np.ndarray


def prepare_images(
    images: ImageInput | Sequence[ImageInput],
    pre: Preprocessing,
    every_face: bool = False,
    sources: Sequence[str] | None = None,
) -> PreparedImages:
    """The model's inputs for `images`.

    Without a face step, one row per image. With one, the main face of each image; a photo
    without a face is left out (listed in `no_face`) when the step's on_no_face is "skip",
    and refused when it is "error". With `every_face`, one row per face found, with its box.

    Args:
        sources: how answers name each image (default: its path, or "image N").
    Raises:
        DataError: an unreadable input, or a photo without a face under on_no_face "error".
        ConfigError: every_face for a model without a face step; sources of another length.
    """
    given = as_image_list(images)
    names = [describe(item, i) for i, item in enumerate(given)] if sources is None else sources
    if len(names) != len(given):
        raise ConfigError(f"{len(names)} sources for {len(given)} images")
    names = [str(n) for n in names]
    if every_face:
        x, owners, boxes = _every_face(given, pre)
        return PreparedImages(given, names, x, owners, boxes)
    if pre.face is None or pre.face.on_no_face == "error":
        return PreparedImages(given, names, model_input(given, pre), list(range(len(given))))
    if not given:
        raise DataError("no images given: pass at least one image (a path, array or tensor)")
    arrays, kept = [], []
    for i, image in enumerate(given):
        try:
            arrays.append(_face(image, i, pre))
            kept.append(i)
        except NoFaceError:
            pass
    return PreparedImages(given, names, _stacked(arrays, pre), kept)


def _stacked(arrays: list[np.ndarray], pre: Preprocessing) -> np.ndarray:
    """(M, *input_shape) uint8 of M arrays (M may be 0)."""
    if not arrays:
        return np.empty((0, *pre.input_shape), dtype=np.uint8)
    return np.stack(arrays)


def _every_face(
    images: list[ImageInput], pre: Preprocessing
) -> tuple[np.ndarray, list[int], list[list[float]]]:
    """Every face of each photo (the model's face step, with all faces): (inputs, the photo
    of each, its box).

    Raises:
        ConfigError: the model declares no face step. DataError: an unreadable input.
    """
    from siamese.data.folders.face_crops import every_face_crop

    if pre.face is None:
        raise ConfigError(
            "this model declares no face step (it was not trained on face crops), so it cannot "
            "find the faces in a photo: identify whole images instead"
        )
    channels, height, width = pre.input_shape
    arrays, owners, boxes = [], [], []
    for i, image in enumerate(images):
        photo = _decoded(image, i, 3, None, "stretch")
        for box, crop in every_face_crop(
            photo, describe(image, i), pre.face, int(channels), (int(height), int(width)),
            "stretch",
        ):  # fmt: skip
            arrays.append(crop)
            owners.append(i)
            boxes.append(box)
    return _stacked(arrays, pre), owners, boxes


def model_input(images: Sequence[ImageInput], pre: Preprocessing) -> np.ndarray:
    """Each image prepared for the model.

    Args:
        images: single images (`as_image_list`).
        pre: the model's preprocessing.
    Returns:
        (N, *input_shape) uint8 for image models; float32 for others (uint8 examples
        scaled to [0, 1], as the model scales them).
    Raises:
        DataError: a file missing, unreadable or not an image; an array of a shape or value
            range that is not an image. The message names the input (path or position); the
            caller has written nothing yet.
    """
    if not images:
        raise DataError("no images given: pass at least one image (a path, array or tensor)")
    if not pre.is_image:
        return np.stack([_vector(image, i, pre) for i, image in enumerate(images)])
    arrays = [_image(image, i, pre) for i, image in enumerate(images)]
    return np.stack(arrays)


def _image(image: ImageInput, index: int, pre: Preprocessing) -> np.ndarray:
    if pre.face is not None:
        return _face(image, index, pre)
    channels, height, width = pre.input_shape
    return _decoded(image, index, int(channels), (int(height), int(width)), pre.resize)


def _decoded(
    image: ImageInput, index: int, channels: int, size: tuple[int, int] | None, resize: str
) -> np.ndarray:
    """(C, H, W) uint8 pixels of one input, at `size` (None: its own)."""
    name = describe(image, index)
    try:
        if isinstance(image, (str, Path)):
            path = Path(image)
            if not path.is_file():
                raise DataError(
                    f"{path}: no such file" + (" (it is a folder)" if path.is_dir() else "")
                )
            return decode_image(str(path), channels, size, resize)
        if isinstance(image, bytes):
            return decode_image_bytes(image, name, channels, size, resize)
        if isinstance(image, Image.Image):
            return image_array(image, name, channels, size, resize)
        if isinstance(image, np.ndarray) or is_tensor(image):
            return image_array(_pil(image, name), name, channels, size, resize)
    except BadImageError as err:
        raise DataError(f"{err.path}: {err.reason}") from None
    raise DataError(
        f"{name}: a {type(image).__name__} is not an image; give a file path, a PIL image, a "
        "numpy array (H, W[, C]) or a torch tensor (C, H, W)"
    )


def _face(image: ImageInput, index: int, pre: Preprocessing) -> np.ndarray:
    """The largest face of a photo, detected and aligned by the model's face step, at the
    model's size and channels."""
    from siamese.data.folders.face_crops import crop_face_image

    assert pre.face is not None
    channels, height, width = pre.input_shape
    photo = _decoded(image, index, 3, None, "stretch")  # the whole photo, RGB
    try:
        return crop_face_image(
            photo,
            describe(image, index),
            pre.face,
            int(channels),
            (int(height), int(width)),
            "stretch",
        )
    except BadImageError as err:
        error = NoFaceError if err.reason.startswith(NO_FACE) else DataError
        raise error(f"{err.path}: {err.reason}") from None


def _pil(array: np.ndarray | torch.Tensor, name: str) -> Image.Image:
    """A PIL image of an (H, W), (H, W, C) numpy or (H, W), (C, H, W) torch image."""
    tensor = is_tensor(array)
    if tensor:
        t = array.detach().cpu()
        values = t.numpy() if t.ndim == 2 else t.permute(1, 2, 0).numpy()
    else:
        values = array
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[:, :, 0]
    if values.ndim not in (2, 3) or (values.ndim == 3 and values.shape[2] not in (3, 4)):
        layout = "(H, W) or (C, H, W)" if tensor else "(H, W[, C])"
        raise DataError(
            f"{name}: an array of shape {tuple(array.shape)} is not an image: give {layout} "
            "with 1, 3 or 4 channels"
        )
    values = _as_uint8(values, name)
    mode = "L" if values.ndim == 2 else ("RGB" if values.shape[2] == 3 else "RGBA")
    return Image.fromarray(np.ascontiguousarray(values), mode)


def _as_uint8(values: np.ndarray, name: str) -> np.ndarray:
    if values.dtype == np.uint8:
        return values
    if values.dtype.kind == "f":
        if not np.isfinite(values).all() or values.min() < 0 or values.max() > 1:
            raise DataError(
                f"{name}: float pixels must lie in [0, 1] (found {values.min():g} … "
                f"{values.max():g}); scale them, or pass uint8 values 0 … 255"
            )
        return np.rint(values * 255).astype(np.uint8)  # 8 bits, as an image file holds
    if values.dtype.kind in "iu" and values.min() >= 0 and values.max() <= 255:
        return values.astype(np.uint8)
    raise DataError(
        f"{name}: pixels of type {values.dtype} are not 8-bit image values; give uint8 "
        "(0 … 255) or floats in [0, 1]"
    )


def _vector(example: Any, index: int, pre: Preprocessing) -> np.ndarray:
    """A non-image example: a tensor or array of exactly the model's input shape, as float32."""
    name = describe(example, index)
    if is_tensor(example):
        t = example.detach().cpu()
        example = t.numpy() if str(t.dtype) == "torch.uint8" else t.float().numpy()
    if not isinstance(example, np.ndarray):
        raise DataError(
            f"{name}: this model takes inputs of shape {pre.input_shape}, not images; give "
            "tensors or arrays of that shape"
        )
    if tuple(example.shape) != pre.input_shape:
        raise DataError(
            f"{name}: shape {tuple(example.shape)}, but the model takes {pre.input_shape}"
        )
    # uint8 scaled as the model scales it, so one batch can mix uint8 and float examples
    if example.dtype == np.uint8:
        return example.astype(np.float32) / np.float32(255)
    return example.astype(np.float32)
