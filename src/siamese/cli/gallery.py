"""`siamese gallery ...`: create a gallery of people for a model, enroll them from images or a
known-people folder, identify and verify new images, list, remove, rename, move to another
model. The gallery remembers its model, so only `create` (and `reembed`) name one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from siamese.cli.device_option import DeviceOption
from siamese.cli.engine_option import EngineOption
from siamese.cli.recognize import JsonOption, image_files
from siamese.data.image_files import IMAGE_SUFFIXES

gallery_app = typer.Typer(
    help="A persistent gallery of people (SQLite file or database URL): enroll from one photo, "
    "identify with strangers answered 'unknown'.",
    no_args_is_help=True,
)

GalleryArgument = Annotated[
    str,
    typer.Argument(help="The gallery: an SQLite file path, or a database URL.", show_default=False),
]
ModelOverride = Annotated[
    Path | None,
    typer.Option(
        "--model",
        help="The model to open the gallery with (default: the one it was created with): a "
        "run or model folder, or an ONNX export of the same run (`siamese export`), which "
        "embeds with onnxruntime.",
        show_default=False,
    ),
]
SearchOption = Annotated[
    str,
    typer.Option(
        "--search",
        help="'auto' (exact below 200,000 examples, then ivfpq), 'exact', or an approximate index tuned to agree with exact search on 99.9 %% of probes: 'ivf', 'hnsw' or 'ivfpq' (needs faiss-cpu; BENCHMARKS says which for which size).",
    ),
]


def _open(
    location: str,
    model: Path | None,
    search: str = "auto",
    device: str | None = None,
    engine: str = "pytorch",
) -> Any:
    """The gallery with its model (or `model`), run by `engine` (the commands that embed
    many images or serve take `--engine`, auto by default; the others read no images)."""
    from siamese.recognition import Gallery

    if engine == "pytorch":
        return Gallery.open_with_its_model(location, model, search, device)
    from siamese.export.serving_engine import load_serving_recognizer

    recognizer, _ = load_serving_recognizer(
        model if model is not None else Gallery.its_model(location), device, engine
    )
    return Gallery.open(location, recognizer, search=search)


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


@gallery_app.command("create")
def create(
    location: GalleryArgument,
    model: Annotated[
        Path,
        typer.Option(
            "--model",
            help="The model: a run or model folder, or an ONNX export folder (`siamese export "
            "--format onnx`: embeds with onnxruntime).",
        ),
    ],
    fpir: Annotated[
        float | None,
        typer.Option(
            "--fpir",
            help="The share of strangers the gallery may accept, at whatever size it grows "
            "to (default 0.01): its threshold follows the number of people enrolled.",
            show_default=False,
        ),
    ] = None,
    far: Annotated[
        float | None,
        typer.Option(
            "--far",
            help="Experts: a fixed pair false-accept rate instead of --fpir (the share of "
            "strangers accepted then grows with the gallery).",
            show_default=False,
        ),
    ] = None,
    scoring: Annotated[
        str,
        typer.Option("--scoring", help="'nearest' example of each identity, or 'centroid'."),
    ] = "nearest",
    keep_images: Annotated[
        bool,
        typer.Option("--keep-images", help="Store the images too (needed by `reembed`)."),
    ] = False,
    normalise: Annotated[
        str | None,
        typer.Option(
            "--normalise",
            help="Decide on the best distance as a 'ratio' to (or 't-norm' against) the "
            "probe's 5 nearest other identities, or on distances ('none'). Default: the "
            "library's (see BENCHMARKS: strangers accepted at every gallery size).",
            show_default=False,
        ),
    ] = None,
    device: DeviceOption = None,
) -> None:
    """Create an empty gallery bound to a model and its decision rule."""
    from siamese.recognition import Gallery, load_recognizer

    with Gallery.create(
        location,
        load_recognizer(model, device),
        fpir=fpir,
        far=far,
        scoring=scoring,
        keep_images=keep_images,
        **({"normalisation": normalise} if normalise is not None else {}),
    ) as gallery:
        rule, target = gallery.rule
        _console().print(
            f"created {location}: model {model}, scoring {scoring}, deciding at "
            f"{rule.upper()} {target:g}; the threshold follows the gallery's size "
            f"({gallery.threshold:.4f} for its first identity)"
            if rule == "fpir"
            else f"created {location}: model {model}, scoring {scoring}, threshold "
            f"{gallery.threshold:.4f} at pair FAR {target:g} (fixed: the share of strangers "
            "accepted grows with the gallery; `siamese gallery stats` estimates it)"
        )


@gallery_app.command("calibrate")
def calibrate(
    location: GalleryArgument,
    model: ModelOverride = None,
    fpir: Annotated[
        float | None,
        typer.Option("--fpir", help="Change the target FPIR too.", show_default=False),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Measure the gallery on its own people (each left out as a stranger to the rest;
    identities with two or more images as genuine probes) and set its threshold from it."""
    with _open(location, model) as gallery:
        if fpir is not None:
            gallery.set_rule(fpir=fpir)
        gallery.calibrate()
        figures = gallery.stats()
    if as_json:
        typer.echo(json.dumps(figures))
        return
    _print_decision(figures)


def _print_decision(figures: dict[str, Any]) -> None:
    console = _console()
    estimate = figures["estimated_fpir"]
    rate = figures["expected_identification_rate"]
    console.print(
        f"{figures['identities']} identities, {figures['examples']} images; rule "
        f"{figures['rule'].upper()} {figures['target']:g}: threshold {figures['threshold']:.4f}, "
        f"estimated FPIR {'unknown' if estimate is None else f'{estimate:.3g}'} at this size"
    )
    console.print(f"  resting on {figures['basis']}")
    if rate is not None:
        console.print(
            f"  expected identification rate {rate:.1%} ({figures['genuine_probes']} genuine "
            "probes from identities with two or more images)"
        )


def _people_in(folder: Path) -> list[tuple[str, list[Path]]]:
    """A known-people folder: each subfolder is a person (its images, recursively), each
    image file at the top is a person named by the file's stem."""
    from siamese.errors import DataError

    if not folder.is_dir():
        raise DataError(f"--folder {folder}: not a folder")
    people: dict[str, list[Path]] = {}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_dir():
            people[entry.name] = image_files([entry])
        elif entry.suffix.lower() in IMAGE_SUFFIXES:
            people.setdefault(entry.stem, []).append(entry)
    if not people:
        raise DataError(
            f"--folder {folder}: no people found; give one subfolder per person (or image "
            "files named after each person)"
        )
    return sorted(people.items())


@gallery_app.command("enroll")
def enroll(
    location: GalleryArgument,
    name: Annotated[
        str | None, typer.Argument(help="The person's name.", show_default=False)
    ] = None,
    images: Annotated[
        list[Path] | None,
        typer.Argument(help="Their images (files or folders).", show_default=False),
    ] = None,
    folder: Annotated[
        Path | None,
        typer.Option(
            "--folder",
            help="A known-people folder: one subfolder per person (or one image file per "
            "person, named after them).",
            show_default=False,
        ),
    ] = None,
    clusters: Annotated[
        Path | None,
        typer.Option(
            "--clusters",
            help="The --out folder of `siamese cluster`, reviewed: each folder of its people/ "
            "you renamed is a person, the faces linked from it their examples (a face moved "
            "to another folder goes with it).",
            show_default=False,
        ),
    ] = None,
    cluster_names: Annotated[
        list[str] | None,
        typer.Option(
            "--name",
            help="With --clusters: CLUSTER=NAME names a folder not renamed (cluster-003=Ann, "
            "or 3=Ann); give two clusters the same name to merge them. Repeatable.",
            show_default=False,
        ),
    ] = None,
    metadata: Annotated[
        str | None,
        typer.Option(
            "--metadata", help='JSON object kept with the person, e.g. \'{"team": "A"}\'.'
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Enroll an image even if another person has it."),
    ] = False,
    model: ModelOverride = None,
    as_json: JsonOption = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    device: DeviceOption = None,
    engine: EngineOption = "auto",
) -> None:
    """Enroll a person from images (NAME IMAGE...), everyone in --folder, or the reviewed
    clusters of `siamese cluster` (--clusters)."""
    from siamese.errors import ConfigError, DataError

    if clusters is not None:
        if name is not None or images or folder is not None:
            raise ConfigError("give --clusters alone, not with NAME IMAGE... or --folder")
        _enroll_clusters(
            location, clusters, cluster_names or [], force, model, as_json, device, engine
        )
        return
    if cluster_names:
        raise ConfigError("--name CLUSTER=NAME names the folders of --clusters; give --clusters")

    meta = None
    if metadata is not None:
        try:
            meta = json.loads(metadata)
        except json.JSONDecodeError as err:
            raise ConfigError(
                f'--metadata: not JSON ({err.msg}); e.g. \'{{"team": "A"}}\''
            ) from None
        if not isinstance(meta, dict):
            raise ConfigError('--metadata: give a JSON object, e.g. \'{"team": "A"}\'')
    if folder is not None:
        if name is not None or images:
            raise ConfigError("give either NAME IMAGE... or --folder, not both")
        people = _people_in(folder)
    elif name is not None and images:
        people = [(name, image_files(images))]
    else:
        raise ConfigError("give NAME IMAGE... (one person) or --folder PEOPLE/ (everyone in it)")
    results = []
    with _open(location, model, device=device, engine=engine) as gallery:
        progress = _progress(len(people), quiet or as_json)
        with progress:
            task = progress.add_task("enrolling", total=len(people))
            for person, files in people:
                try:
                    results.append(gallery.enroll(person, files, metadata=meta, force=force))
                except DataError as err:
                    done = ", ".join(r.identity for r in results) or "nobody"
                    raise DataError(f"{err} (enrolled before this: {done})") from None
                progress.advance(task)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results]))
        return
    console = _console()
    for r in results:
        verb = "new" if r.created else "added to"
        line = f"{r.identity}: {verb}, {len(r.added)} image(s) enrolled"
        if r.already_enrolled:
            line += f"; {len(r.already_enrolled)} already enrolled (nothing changed for them)"
        if r.no_face:
            line += f"; no face found in {len(r.no_face)}, left out: {', '.join(r.no_face)}"
        console.print(line)


def _enroll_clusters(
    location: str,
    clusters: Path,
    pairs: list[str],
    force: bool,
    model: Path | None,
    as_json: bool,
    device: str | None,
    engine: str,
) -> None:
    """`gallery enroll --clusters DIR [--name CLUSTER=NAME ...]`."""
    from siamese.clustering.cluster_enrollment import enroll_clusters
    from siamese.errors import ConfigError

    names: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(f"--name {pair!r}: give CLUSTER=NAME, e.g. cluster-003=Ann")
        names[key.strip()] = value.strip()
    with _open(location, model, device=device, engine=engine) as gallery:
        done = enroll_clusters(gallery, clusters, names, force)
    if as_json:
        typer.echo(
            json.dumps({"enrolled": [r.as_dict() for r in done.enrolled], "unnamed": done.unnamed})
        )
        return
    console = _console()
    for r in done.enrolled:
        verb = "new" if r.created else "added to"
        line = f"{r.identity}: {verb}, {len(r.added)} face(s) enrolled"
        if r.already_enrolled:
            line += f"; {len(r.already_enrolled)} already enrolled"
        console.print(line)
    if done.unnamed:
        console.print(
            f"not enrolled: {len(done.unnamed)} folder(s) keep their generated names "
            f"({', '.join(done.unnamed[:6])}{' …' if len(done.unnamed) > 6 else ''})"
        )


def _progress(total: int, hidden: bool) -> Any:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        disable=hidden or total < 2,
        transient=True,
    )


@gallery_app.command("identify")
def identify(
    location: GalleryArgument,
    images: Annotated[
        list[Path], typer.Argument(help="Images (files or folders).", show_default=False)
    ],
    k: Annotated[int, typer.Option("--k", min=1, help="Candidates listed per image.")] = 5,
    model: ModelOverride = None,
    search: SearchOption = "auto",
    every_face: Annotated[
        bool,
        typer.Option(
            "--every-face",
            help="Face models: answer for every face found in each photo (with its box), "
            "not only its main face.",
        ),
    ] = False,
    as_json: JsonOption = False,
    device: DeviceOption = None,
    engine: EngineOption = "auto",
) -> None:
    """Who each image shows: the best identity within the threshold, or unknown."""
    with _open(location, model, search, device, engine) as gallery:
        answers = gallery.identify(image_files(images), k=k, every_face=every_face)
    if as_json:
        typer.echo(json.dumps([a.as_dict() for a in answers]))
        return
    console = _console()
    for a in answers:
        if a.no_face:
            console.print(f"{a.source}: [bold]no face[/] found by the model's face detector")
            continue
        others = ", ".join(f"{c.identity} {c.distance:.3f}" for c in a.candidates[:k])
        where = f" face at {[round(v) for v in a.box]}" if a.box is not None else ""
        d = a.decision
        estimate = "" if d.estimated_fpir is None else f", est. FPIR {d.estimated_fpir:.3g}"
        flag = (
            " [yellow]ambiguous: the runner-up is within the threshold too[/]"
            if a.ambiguous
            else ""
        )
        console.print(
            f"{a.source}{where}: [bold]{a.label}[/]{flag} (distance {a.distance:.4f}, "
            f"threshold {d.threshold:.4f} at {d.rule.upper()} {d.target:g}{estimate}); "
            f"candidates: {others or 'none'}"
        )


@gallery_app.command("verify")
def verify(
    location: GalleryArgument,
    name: Annotated[str, typer.Argument(help="The claimed identity.", show_default=False)],
    image: Annotated[Path, typer.Argument(help="One image file.", show_default=False)],
    model: ModelOverride = None,
    as_json: JsonOption = False,
    device: DeviceOption = None,
    engine: EngineOption = "auto",
) -> None:
    """Whether an image shows the claimed person."""
    with _open(location, model, device=device, engine=engine) as gallery:
        v = gallery.verify(name, image)
    if as_json:
        typer.echo(json.dumps(v.as_dict()))
        return
    verdict = "yes" if v.same else "no"
    far = f" (pair FAR {v.far:g})" if v.far is not None else ""
    _console().print(
        f"{verdict}: {v.source} vs {v.identity}, distance {v.distance:.4f} "
        f"{'<=' if v.same else '>'} threshold {v.threshold:.4f}{far}"
    )


@gallery_app.command("list")
def list_identities(
    location: GalleryArgument,
    model: ModelOverride = None,
    as_json: JsonOption = False,
) -> None:
    """The enrolled people and how many images each has."""
    with _open(location, model) as gallery:
        people = gallery.identities()
    if as_json:
        typer.echo(json.dumps([p.as_dict() for p in people]))
        return
    console = _console()
    for p in people:
        console.print(f"{p.name}: {p.examples} image(s)")
    console.print(f"{len(people)} identities")


@gallery_app.command("remove")
def remove(
    location: GalleryArgument,
    name: Annotated[str, typer.Argument(help="The person to remove.", show_default=False)],
    model: ModelOverride = None,
) -> None:
    """Remove a person and their images."""
    with _open(location, model) as gallery:
        count = gallery.remove(name)
    _console().print(f"removed {name} ({count} image(s))")


@gallery_app.command("rename")
def rename(
    location: GalleryArgument,
    name: Annotated[str, typer.Argument(help="The current name.", show_default=False)],
    new_name: Annotated[str, typer.Argument(help="The new name.", show_default=False)],
    model: ModelOverride = None,
) -> None:
    """Rename a person; if the new name exists, merge the two."""
    with _open(location, model) as gallery:
        merged = gallery.rename(name, new_name)
    _console().print(f"{'merged' if merged else 'renamed'} {name} → {new_name}")


@gallery_app.command("stats")
def stats(
    location: GalleryArgument,
    model: ModelOverride = None,
    as_json: JsonOption = False,
) -> None:
    """Size, decision rule, threshold, estimated FPIR (and what it rests on), settings."""
    with _open(location, model) as gallery:
        figures = gallery.stats()
    if as_json:
        typer.echo(json.dumps(figures))
        return
    _print_decision(figures)
    console = _console()
    for key in ("location", "model_path", "metric", "scoring", "search", "keep_images"):
        console.print(f"{key}: {figures[key]}")


@gallery_app.command("index")
def index(
    location: GalleryArgument,
    search: SearchOption = "auto",
    target: Annotated[
        float | None,
        typer.Option(
            "--target",
            help="Share of answers an approximate index must give as the exact search does "
            "(default 0.999); its parameters are tuned to it.",
            show_default=False,
        ),
    ] = None,
    model: ModelOverride = None,
    as_json: JsonOption = False,
) -> None:
    """Build (or check) the gallery's search index now, so that `serve` and `identify` start
    without building it: the snapshot beside the gallery, its tuning and what it rests on."""
    from siamese.errors import ConfigError
    from siamese.recognition import Gallery, load_recognizer

    if target is not None and not 0.0 < target <= 1.0:
        raise ConfigError(f"--target must be a share in (0, 1], not {target}")
    recognizer = load_recognizer(model if model is not None else Gallery.its_model(location))
    with Gallery.open(location, recognizer, search=search, target=target) as gallery:
        status = gallery.load_search()
    if as_json:
        typer.echo(json.dumps(status, default=str))
        return
    console = _console()
    how = status.get("rebuilt_because")
    console.print(
        f"search {status['search']} ({'built: ' + how if how else 'read from its snapshot'})"
        f"; {status.get('added_since', 0)} example(s) added since the snapshot"
    )
    if "index_folder" in status:
        console.print(f"snapshot: {status['index_folder']}")
    tuning = status.get("tuning")
    if tuning:
        params = ", ".join(f"{k} {v}" for k, v in tuning["params"].items())
        console.print(
            f"tuned: {params}; answers agreeing with exact search on "
            f"{100 * tuning['agreement']:.2f} % of {tuning['probes']} stored examples "
            f"(target {100 * tuning['target']:.2f} %"
            + (")" if tuning["met"] else ": NOT met, the dearest setting is kept)")
        )
    if "not_persisted" in status:
        console.print(f"[yellow]not written ({status['not_persisted']}): kept in memory[/]")


@gallery_app.command("reembed")
def reembed(
    location: GalleryArgument,
    model: Annotated[Path, typer.Option("--model", help="The new model.")],
    far: Annotated[
        float | None,
        typer.Option(
            "--far", help="Its threshold's FAR (default: the gallery's).", show_default=False
        ),
    ] = None,
    device: DeviceOption = None,
) -> None:
    """Move a gallery that kept its images (--keep-images) to another model."""
    from siamese.recognition import load_recognizer

    with _open(location, None) as gallery:  # with the model it holds embeddings of
        count = gallery.reembed(load_recognizer(model, device), far=far)
        _console().print(
            f"re-embedded {count} image(s) with {model}; threshold {gallery.threshold:.4f}"
        )
