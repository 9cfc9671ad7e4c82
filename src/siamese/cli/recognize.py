"""`siamese embed`, `siamese compare` and `siamese calibrate`: a trained model applied to
image files, and its decision thresholds measured on the user's own labelled data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from siamese.cli.device_option import DeviceOption
from siamese.data.image_files import find_image_files as image_files

ModelArgument = Annotated[
    Path,
    typer.Argument(
        help="A run directory, a folder with model.json and model.safetensors, or (embed, "
        "compare) an ONNX export folder.",
        show_default=False,
    ),
]
FarOption = Annotated[
    float | None,
    typer.Option(
        "--far",
        help="Decide at the threshold calibrated for this false-accept rate (default: the "
        "smallest the model's calibration supports).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (documented in README).")]


def embed(
    model: ModelArgument,
    paths: Annotated[
        list[Path],
        typer.Argument(help="Image files or folders (searched recursively).", show_default=False),
    ],
    out: Annotated[
        Path,
        typer.Option("--out", help="Output file: .npz (numpy) or .parquet (needs pyarrow)."),
    ],
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Images per batch.")] = 256,
    workers: Annotated[
        int,
        typer.Option(
            "--workers", min=0, help="Processes decoding images ahead of the model (0: none)."
        ),
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    device: DeviceOption = None,
) -> None:
    """Embed image files with a trained model; write the embeddings with their paths.

    Under `torchrun --nproc_per_node=N -m siamese embed ...` each process embeds its share of
    the files and the first writes the one output, every path once, in input order."""
    import numpy as np
    import torch
    from rich.console import Console

    from siamese.errors import ConfigError, DataError, SiameseError
    from siamese.recognition import load_recognizer
    from siamese.recognition.file_embedding import embed_files, shard_bounds
    from siamese.training.distributed import join_from_environment, leave

    suffix = out.suffix.lower()
    if suffix not in (".npz", ".parquet"):
        raise ConfigError(f"--out {out}: write .npz or .parquet (the format follows the suffix)")
    # The embeddings travel between processes once, at the end, in host memory: gloo, even
    # when the models run on GPUs.
    group = join_from_environment("gloo")
    try:
        files = _shared(group, lambda: _unique(image_files(paths)))
        start, end = shard_bounds(len(files), group.rank, group.world_size)
        failure: str | None = None
        z = None
        try:
            recognizer = load_recognizer(model, device)
            if end > start:
                mine = embed_files(recognizer, files[start:end], batch_size, workers, not quiet)
                z = mine.numpy()
        except Exception as err:  # every rank must reach the gathers below, or they hang
            if not group.distributed:
                raise
            failure = str(err) if isinstance(err, SiameseError) else f"{type(err).__name__}: {err}"
            failure = f"process {group.rank}: {failure}"
        if group.distributed:
            failures: list[Any] = [None] * group.world_size
            torch.distributed.all_gather_object(failures, failure)
            problems = [f for f in failures if f is not None]
            if problems:
                raise DataError("; ".join(problems))
            parts: list[Any] | None = [None] * group.world_size if group.is_main else None
            torch.distributed.gather_object(z, parts, dst=0)  # only the writer holds them all
        else:
            parts = [z]
        if not group.is_main:
            return
        embeddings = np.concatenate([part for part in parts if part is not None])
        if embeddings.shape[0] != len(files):
            raise DataError(
                f"{embeddings.shape[0]} embeddings for {len(files)} files: a process embedded "
                "another share than it was given; nothing was written"
            )
        _write_embeddings(out, [str(p) for p in files], embeddings, recognizer)
    finally:
        leave(group)
    Console(highlight=False, soft_wrap=True).print(
        f"{len(files)} embeddings ({embeddings.shape[1]}-d) → {out}"
        + (f" ({group.world_size} processes)" if group.distributed else "")
    )


def _shared(group: Any, make: Any) -> Any:
    """`make()` on the first process, the same value on every process (a folder that changes
    while the processes start cannot give them different file lists); its user error, if it
    raises one, on every process."""
    if not group.distributed:
        return make()
    import torch

    from siamese.errors import DataError, SiameseError

    box: list[Any] = [None]
    if group.is_main:
        try:
            box = [(make(), None)]
        except SiameseError as err:
            box = [(None, str(err))]
    torch.distributed.broadcast_object_list(box, src=0)
    value, error = box[0]
    if error is not None:
        raise DataError(error)
    return value


def _unique(files: list[Path]) -> list[Path]:
    """`files` without repeats (the same file named twice, or a file inside a folder also
    given), first occurrence kept: the output lists every file once."""
    seen: set[Path] = set()
    kept = []
    for path in files:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            kept.append(path)
    return kept


def _write_embeddings(out: Path, names: list[str], z: Any, recognizer: Any) -> None:
    """`out` (.npz or .parquet, atomically): the embeddings, their paths, the model's
    fingerprint and metric."""
    import io

    import numpy as np

    from siamese.atomic_files import write_bytes_atomic
    from siamese.errors import ConfigError

    buffer = io.BytesIO()
    if out.suffix.lower() == ".npz":
        np.savez(
            buffer,
            embeddings=z,
            paths=np.asarray(names),
            model_fingerprint=np.asarray(recognizer.fingerprint),
            metric=np.asarray(recognizer.metric),
        )
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise ConfigError(
                f"--out {out}: writing parquet needs pyarrow (pip install pyarrow); or write .npz"
            ) from None
        table = pa.table({"path": names, "embedding": list(z)})
        table = table.replace_schema_metadata(
            {"model_fingerprint": recognizer.fingerprint, "metric": recognizer.metric}
        )
        pq.write_table(table, buffer)
    write_bytes_atomic(out, buffer.getvalue())


def compare(
    model: ModelArgument,
    a: Annotated[Path, typer.Argument(help="One image file.", show_default=False)],
    b: Annotated[Path, typer.Argument(help="The other image file.", show_default=False)],
    far: FarOption = None,
    threshold: Annotated[
        float | None,
        typer.Option("--threshold", help="Decide at this distance instead of a calibrated one."),
    ] = None,
    as_json: JsonOption = False,
    device: DeviceOption = None,
) -> None:
    """Whether two images show the same identity: distance, threshold, FAR, decision."""
    from rich.console import Console

    from siamese.recognition import load_recognizer

    result = load_recognizer(model, device).compare(a, b, far=far, threshold=threshold)
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
        return
    verdict = "same" if result.same else "different"
    rate = f" (FAR {result.far:g}, {result.calibrated_on})" if result.far is not None else ""
    Console(highlight=False, soft_wrap=True).print(
        f"{verdict}: distance {result.distance:.4f} {'<=' if result.same else '>'} threshold "
        f"{result.threshold:.4f}{rate}"
    )


def _validation_classes(run: Path) -> Any:
    """The validation classes of the run at `run`, as its training held them out.

    Raises:
        ConfigError: not a run folder, or a run without class-disjoint validation.
    """
    from siamese.config import load_config
    from siamese.errors import ConfigError
    from siamese.run_directory.data import load_training_data

    if not (run / "config.yaml").is_file():
        raise ConfigError(
            f"--data validation: {run} is not a run folder (no config.yaml); give the --out "
            "folder of `siamese train`, or --data folder:PATH"
        )
    config = load_config(run / "config.yaml")
    if config.data.validation != "classes":
        raise ConfigError(
            f"--data validation: the run at {run} held out {config.data.validation}, not "
            "classes, so it has no people it never trained on; give --data folder:PATH"
        )
    _, validation, _ = load_training_data(config)
    assert validation is not None
    return validation


def calibrate(
    model: ModelArgument,
    data: Annotated[
        str,
        typer.Option(
            "--data",
            help="Labelled data of identities the model did not train on: folder:PATH (one "
            "subfolder per identity), a dataset name, or 'validation': the run's own "
            "validation classes again (e.g. to add what a newer siamese measures).",
        ),
    ],
    split: Annotated[str | None, typer.Option("--split", help="The dataset's split.")] = None,
    data_option: Annotated[
        list[str] | None,
        typer.Option(
            "--data-option",
            help="A source option of --data, KEY=VALUE (repeatable).",
            show_default=False,
        ),
    ] = None,
    far: Annotated[
        float | None,
        typer.Option(
            "--far",
            help="A rate you need: warns when the data cannot support it.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    device: DeviceOption = None,
) -> None:
    """Measure the model's decision thresholds on labelled data and store them in its
    model.json (replacing the ones training measured)."""
    import warnings

    from rich.console import Console

    from siamese.config.yaml_dialect import parse_key_value
    from siamese.recognition import Recognizer
    from siamese.recognition.calibration_data import calibration_data
    from siamese.recognition.thresholds import MIN_FALSE_ACCEPTS, write_thresholds

    options = dict(parse_key_value(o, "--data-option") for o in data_option or [])
    recognizer = Recognizer.load(model, device=device or "auto")
    if data == "validation":
        labelled, description, seen = _validation_classes(recognizer.model_dir), "", 0
        classes = int(labelled.y.unique().numel())
        description = (
            f"the run's validation classes ({classes} classes, {len(labelled):,} examples, "
            "never trained on)"
        )
    else:
        labelled, description, seen = calibration_data(recognizer, data, split, options)
    if seen:
        warnings.warn(
            f"{seen} of the {data} classes were trained on by this model: thresholds measured "
            "on them are optimistic for new people",
            stacklevel=1,
        )
    thresholds = recognizer.calibrate(labelled, description, progress=not quiet)
    if far is not None and far not in thresholds.at_far:
        needed = int(-(-MIN_FALSE_ACCEPTS // far))
        warnings.warn(
            f"--far {far:g}: {description} gives {thresholds.impostor_pairs:,} impostor pairs; "
            f"a threshold at {far:g} needs {needed:,}. Calibrate on more identities or images",
            stacklevel=1,
        )
    write_thresholds(recognizer.model_dir, thresholds)
    console = Console(highlight=False, soft_wrap=True)
    console.print(
        f"calibrated on {description}: {thresholds.genuine_pairs:,} genuine and "
        f"{thresholds.impostor_pairs:,} impostor pairs; EER {thresholds.eer:.4f}"
    )
    for rate, value in thresholds.at_far.items():
        console.print(f"  FAR {rate:g}: threshold {value:.4f}")
    console.print(f"written to {recognizer.model_dir / 'model.json'}")
