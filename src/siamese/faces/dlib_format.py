"""Reading a dlib network file (`dlib::serialize(net)`), without dlib.

dlib writes a network as a tree: the loss layer, then each wrapping layer's format version from
the outside in, then from the input layer out each layer's details (its name string, its
hyper-parameters, its `params` tensor) and the wrapper's bookkeeping (three flags, three
tensors that are empty in a saved net). Tag and skip layers (which only route tensors, as in
a residual block) write nothing but their version, so the tree's wiring is not in the file: it
is in the network's C++ type, which `siamese.faces.face_resnet` restates in PyTorch.

The primitives follow dlib's `serialize.h`: an integer is a control byte (low nibble: number
of bytes; 0x80: negative) then its little-endian bytes; a float is an integer mantissa and an
integer exponent (value = mantissa · 2^exponent); a string is its length then its bytes; a
bool is the character '1' or '0'; a tensor (format 2) is its four dimensions then raw
little-endian float32 values.

Only the layer kinds of dlib's face recognition ResNet (and its relatives) are read; any other
is reported by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from siamese.errors import DataError


@dataclass
class DlibLayer:
    """One computational layer as the file describes it.

    Attributes:
        kind: dlib's name without its format suffix: "input_rgb_image_sized", "con",
            "affine", "relu", "max_pool", "avg_pool", "add_prev", "fc".
        settings: hyper-parameters (e.g. num_filters, nr, nc, stride_y, padding_x, mode).
        params: the layer's parameters as dlib stores them (flat float32), if any.
    """

    kind: str
    settings: dict[str, float | int | str | tuple[float, ...]] = field(default_factory=dict)
    params: np.ndarray | None = None


@dataclass
class DlibNetwork:
    """A parsed network: the loss layer's settings and the layers from input to output.

    `wrappers` lists the format version of every layer wrapper from the outside in (2: a
    computational layer, 3: the one over the input layer, 1: a tag or skip layer).
    """

    loss: str
    loss_settings: dict[str, float]
    layers: list[DlibLayer]
    wrappers: list[int]


class _Reader:
    def __init__(self, data: bytes, path: str) -> None:
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, what: str) -> DataError:
        return DataError(
            f"{self.path}: not a dlib network file this reader understands ({what} at byte "
            f"{self.pos}); it should be dlib_face_recognition_resnet_model_v1.dat from the "
            "face_recognition_models package: reinstall that package if the file is damaged"
        )

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise self.fail("the file ends early")
        value = self.data[self.pos]
        self.pos += 1
        return value

    def integer(self) -> int:
        control = self.byte()
        size = control & 0x0F
        if size > 8 or control & 0x70:
            raise self.fail(f"a malformed integer (control byte {control:#04x})")
        if self.pos + size > len(self.data):
            raise self.fail("the file ends early")
        value = int.from_bytes(self.data[self.pos : self.pos + size], "little")
        self.pos += size
        return -value if control & 0x80 else value

    def real(self) -> float:
        mantissa = self.integer()
        exponent = self.integer()
        # dlib marks infinities and NaN with exponents outside any double's range.
        if exponent >= 32000:
            return float("nan") if mantissa == 0 else float("inf") * (1 if mantissa > 0 else -1)
        return float(np.ldexp(float(mantissa), exponent))

    def string(self) -> str:
        length = self.integer()
        if length < 0 or self.pos + length > len(self.data):
            raise self.fail("a malformed string")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("latin-1")

    def flag(self) -> bool:
        value = self.byte()
        if value not in (ord("0"), ord("1")):
            raise self.fail(f"a malformed flag ({value:#04x})")
        return value == ord("1")

    def tensor(self) -> np.ndarray:
        version = self.integer()
        if version != 2:
            raise self.fail(f"a tensor of format {version} (only format 2 is read)")
        shape = tuple(self.integer() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if min(shape) < 0 or end > len(self.data):
            raise self.fail(f"a tensor of shape {shape} longer than the file: the file ends early")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos)
        self.pos = end
        return values.astype(np.float32).reshape(shape)

    def alias(self) -> tuple[int, int, int, int]:
        version = self.integer()
        if version != 1:
            raise self.fail(f"an alias tensor of format {version}")
        return (self.integer(), self.integer(), self.integer(), self.integer())


def read_dlib_network(path: Path | str) -> DlibNetwork:
    """Parse a dlib network file written by `dlib::serialize`.

    Args:
        path: the `.dat` file (e.g. dlib_face_recognition_resnet_model_v1.dat).
    Returns:
        The loss layer and the layers from input to output, parameters as float32 arrays.
    Raises:
        DataError: the file is missing, truncated, or not a network of known layer kinds.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise DataError(
            f"cannot read the dlib network file {path} ({err.strerror or err})"
        ) from None
    reader = _Reader(data, str(path))
    if reader.integer() != 1:
        raise reader.fail("an unknown network format version")
    loss = reader.string()
    if loss != "loss_metric_2":
        raise reader.fail(f"the loss layer {loss!r} (only loss_metric_2 is read)")
    loss_settings = {"margin": reader.real(), "distance_threshold": reader.real()}
    wrappers: list[int] = []
    while not wrappers or wrappers[-1] != 3:
        version = reader.integer()
        if version not in (1, 2, 3) or len(wrappers) > 100_000:
            raise reader.fail(f"a layer wrapper of format {version}")
        wrappers.append(version)
    layers = [_input_layer(reader)]
    for version in reversed(wrappers):
        if version == 1:  # a tag or skip layer: nothing after its version
            continue
        layers.append(_layer(reader))
        reader.flag(), reader.flag(), reader.flag()  # setup done, gradient stale, no output
        for _ in range(3):  # gradient, cached output and parameter gradient: empty when saved
            reader.tensor()
        if version == 3:  # over the input layer: samples per input object (1 for images)
            reader.integer()
    if reader.pos != len(data):
        raise reader.fail(f"{len(data) - reader.pos} bytes after the network")
    return DlibNetwork(loss, loss_settings, layers, wrappers)


def _input_layer(reader: _Reader) -> DlibLayer:
    name = reader.string()
    if name != "input_rgb_image_sized":
        raise reader.fail(f"the input layer {name!r} (only input_rgb_image_sized is read)")
    means = (reader.real(), reader.real(), reader.real())
    rows, columns = reader.integer(), reader.integer()
    return DlibLayer("input_rgb_image_sized", {"means": means, "nr": rows, "nc": columns})


def _layer(reader: _Reader) -> DlibLayer:
    name = reader.string()
    if name == "con_4":
        params = reader.tensor()
        settings: dict[str, float | int | str | tuple[float, ...]] = {
            key: reader.integer()
            for key in (
                "num_filters",
                "nr",
                "nc",
                "stride_y",
                "stride_x",
                "padding_y",
                "padding_x",
            )
        }
        reader.alias(), reader.alias()  # filters, biases: views into params
        for _ in range(4):  # learning-rate and weight-decay multipliers
            reader.real()
        return DlibLayer("con", settings, params.ravel())
    if name == "affine_":
        params = reader.tensor()
        reader.alias(), reader.alias()  # gamma, beta: views into params
        return DlibLayer("affine", {"mode": reader.integer()}, params.ravel())
    if name == "relu_":
        return DlibLayer("relu")
    if name in ("max_pool_2", "avg_pool_2"):
        settings = {
            key: reader.integer()
            for key in ("nr", "nc", "stride_y", "stride_x", "padding_y", "padding_x")
        }
        return DlibLayer(name[: -len("_2")], settings)
    if name == "add_prev_":
        return DlibLayer("add_prev")
    if name == "fc_2":
        outputs, inputs = reader.integer(), reader.integer()
        params = reader.tensor()
        reader.alias(), reader.alias()  # weights, biases
        bias_mode = reader.integer()
        for _ in range(4):
            reader.real()
        settings = {"num_outputs": outputs, "num_inputs": inputs, "bias_mode": bias_mode}
        return DlibLayer("fc", settings, params.ravel())
    raise reader.fail(f"the layer kind {name!r}")
