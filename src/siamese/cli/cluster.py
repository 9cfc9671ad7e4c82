"""`siamese cluster MODEL PHOTOS... --out DIR`: group unlabelled photos by person at the model's
calibrated decision distance, for review and then enrollment (`gallery enroll --clusters`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from siamese.cli.device_option import DeviceOption
from siamese.cli.engine_option import EngineOption
from siamese.cli.recognize import JsonOption

ALGORITHM_HELP = (
    "chinese-whispers (default: the best on the validation sets; see BENCHMARKS), connected "
    "(components of the graph within the distance), average or complete (agglomerative, cut "
    "at the distance), hdbscan (scikit-learn's, the density view)."
)


def cluster(
    model: Annotated[
        Path,
        typer.Argument(
            help="The model: a run or model folder, or its ONNX export.", show_default=False
        ),
    ],
    photos: Annotated[
        list[Path],
        typer.Argument(
            help="Photos: image files or folders (searched recursively).", show_default=False
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out",
            help="Where to write clusters.json/.csv, a folder per cluster (people/), contact "
            "sheets and index.html; its embeddings.sqlite makes a second run embed nothing.",
        ),
    ],
    algorithm: Annotated[
        str, typer.Option("--algorithm", help=ALGORITHM_HELP)
    ] = "chinese-whispers",
    far: Annotated[
        float | None,
        typer.Option(
            "--far",
            help="Decide at the model's calibrated distance for this pair false-accept rate "
            "(default 0.001, or the nearest rate its calibration supports).",
            show_default=False,
        ),
    ] = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="Decide at this distance instead (on the model's metric).",
            show_default=False,
        ),
    ] = None,
    every_face: Annotated[
        bool,
        typer.Option(
            "--every-face", help="Every face of each photo (group photos), not its main face."
        ),
    ] = False,
    neighbours: Annotated[
        int, typer.Option("--neighbours", help="Nearest neighbours searched per face.")
    ] = 32,
    search: Annotated[
        str,
        typer.Option(
            "--search", help="auto, exact, or faiss (approximate, for very large libraries)."
        ),
    ] = "auto",
    workers: Annotated[
        int,
        typer.Option("--workers", help="Processes finding faces while the model embeds."),
    ] = 1,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace folders already renamed in OUT/people."),
    ] = False,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    device: DeviceOption = None,
    engine: EngineOption = "auto",
) -> None:
    """Group unlabelled photos by person: review OUT/index.html, rename the folders in
    OUT/people, then enroll them with `siamese gallery enroll GALLERY --clusters OUT`."""
    from rich.console import Console

    from siamese.clustering.photo_clustering import cluster_photos
    from siamese.data.image_files import find_image_files
    from siamese.errors import ConfigError
    from siamese.export.serving_engine import load_serving_recognizer

    if workers < 0:
        raise ConfigError(f"--workers {workers}: give 0 or more")
    resolved_out = out.resolve()
    # A previous run's links inside OUT are not photos to cluster (their folder is in OUT;
    # resolving the link itself would lead out of it).
    files = [
        p
        for p in find_image_files(photos)
        if resolved_out not in [p.parent.resolve(), *p.parent.resolve().parents]
    ]
    recognizer, _ = load_serving_recognizer(model, device, engine)
    record = cluster_photos(
        recognizer,
        files,
        out,
        algorithm=algorithm,
        far=far,
        threshold=threshold,
        every_face=every_face,
        neighbours=neighbours,
        search=search,
        workers=workers,
        progress=not (quiet or as_json),
        force=force,
        model_name=str(model),
    )
    if as_json:
        summary = {k: v for k, v in record.items() if k != "faces"}
        typer.echo(json.dumps(summary))
        return
    clusters = record["clusters"]
    console = Console(highlight=False, soft_wrap=True)
    largest = f" (largest {clusters[0]['size']} faces)" if clusters else ""
    uncertain = sum(c["uncertain"] for c in clusters)
    console.print(
        f"{record['photos']} photos, {record['faces_found']} faces: {len(clusters)} clusters"
        f"{largest}, {record['singletons']} alone, {uncertain} uncertain ({record['algorithm']})"
    )
    console.print(f"decided at distance {record['threshold']:.4g}: {record['threshold_basis']}")
    if record["no_face"] or record["unreadable"]:
        console.print(
            f"left out: no face in {len(record['no_face'])} photo(s), "
            f"{len(record['unreadable'])} unreadable (listed in {out / 'clusters.json'})"
        )
        for item in record["unreadable"][:5]:
            console.print(f"  {item['reason']}")
    console.print(
        f"review {out / 'index.html'}; rename the folders in {out / 'people'} you recognise, "
        f"then: siamese gallery enroll GALLERY --clusters {out}"
    )
