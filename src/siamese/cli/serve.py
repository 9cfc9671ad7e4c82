"""`siamese serve GALLERY`: the REST service and its page; `siamese serve keys ...`: API keys."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from siamese.cli.device_option import DeviceOption
from siamese.cli.engine_option import EngineOption


class _ServeGroup(TyperGroup):
    """`serve GALLERY [options]` runs the server; `serve keys ...` manages keys: anything that
    is not a subcommand's name is the gallery of the default command, `start`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["start", *args]
        return super().parse_args(ctx, args)


serve_app = typer.Typer(
    cls=_ServeGroup,
    help="The recognition service: REST API and web page over one or several galleries; their API keys.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="API keys of a gallery's service (stored hashed in its database).")
serve_app.add_typer(keys_app, name="keys")

GalleryArgument = Annotated[
    str,
    typer.Argument(help="The gallery: an SQLite file path, or a database URL.", show_default=False),
]


@serve_app.command("start")
def start(
    galleries: Annotated[
        list[str] | None,
        typer.Argument(
            help="The galleries: SQLite files or database URLs, each optionally as "
            "NAME=LOCATION (default name: the file's or database's name). The first is the "
            "default, which /v1/... addresses; /v1/galleries/NAME/... addresses any.",
            show_default=False,
        ),
    ] = None,
    folder: Annotated[
        str | None,
        typer.Option(
            "--galleries",
            help="A folder of galleries: its *.sqlite files, served by file name; the API may "
            "create and delete galleries there.",
            show_default=False,
        ),
    ] = None,
    default: Annotated[
        str | None,
        typer.Option(
            "--default",
            help="The default gallery's name (with --galleries and no GALLERY: 'default').",
            show_default=False,
        ),
    ] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", help="Worker processes.")] = 1,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            help="The model (default: the gallery's own): a run or model folder, or an ONNX "
            "export of the same run, which embeds with onnxruntime.",
        ),
    ] = None,
    search: Annotated[
        str,
        typer.Option(
            "--search",
            help="'auto' (exact below 200,000 examples, then ivfpq), 'exact', or an approximate index tuned to agree with exact search on 99.9 %% of probes: 'ivf', 'hnsw' or 'ivfpq' (needs faiss-cpu; BENCHMARKS says which for which size).",
        ),
    ] = "auto",
    max_upload_mb: Annotated[
        float, typer.Option("--max-upload-mb", help="Largest request body, MB.")
    ] = 10.0,
    max_batch: Annotated[
        int, typer.Option("--max-batch", help="Images per forward pass (1: no batching).")
    ] = 32,
    batch_window_ms: Annotated[
        float, typer.Option("--batch-window-ms", help="Wait for company per batch, ms.")
    ] = 2.0,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            "--max-wait-ms",
            help="Longest wait a stage (decode/detect, model, gallery) queues a request for; "
            "beyond it 503 with Retry-After at once.",
        ),
    ] = 500.0,
    max_queue: Annotated[
        int, typer.Option("--max-queue", help="Most requests one stage holds at once.")
    ] = 64,
    request_timeout: Annotated[
        float,
        typer.Option("--request-timeout", help="Seconds a request may wait for a stage (503)."),
    ] = 30.0,
    rate_limit: Annotated[
        float,
        typer.Option(
            "--rate-limit",
            help="Requests a minute per API key, per worker (0: none); a key made with "
            "--rate has its own. Beyond it 429 with Retry-After.",
        ),
    ] = 0.0,
    device: DeviceOption = None,
    engine: EngineOption = "auto",
) -> None:
    """Serve the galleries (what `siamese serve GALLERY...` runs)."""
    from siamese.service.server import serve
    from siamese.service.settings import ServiceSettings, gallery_targets

    gallery, named, default_name = gallery_targets(list(galleries or []), folder, default)
    settings = ServiceSettings(
        gallery=gallery,
        galleries=named,
        folder=folder,
        default_name=default_name,
        model=model,
        device=device,
        search=search,
        engine=engine,
        max_wait_ms=max_wait_ms,
        max_queue=max_queue,
        request_timeout_s=request_timeout,
        rate_per_minute=rate_limit,
        max_upload_bytes=int(max_upload_mb * 2**20),
        max_batch=max_batch,
        batch_window_ms=batch_window_ms,
    )
    serve(settings, host, port, workers)


def _store(gallery: str) -> Any:
    from siamese.recognition.gallery_store import GalleryStore

    return GalleryStore.open(gallery)


@keys_app.command("create")
def create_key(
    gallery: GalleryArgument,
    role: Annotated[str, typer.Option("--role", help="admin or recognize.")] = "recognize",
    name: Annotated[str, typer.Option("--name", help="What the key is for.")] = "",
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            help="Requests a minute this key may make (0: unlimited; default: the service's "
            "--rate-limit).",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Make a key; it is printed once and only its hash is kept."""
    from siamese.service.keys import create_key as make

    store = _store(gallery)
    try:
        record, key = make(store, role, name, rate)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps({**record.as_dict(), "key": key}))
        return
    typer.echo(f"{key}\n(key {record.id}, {record.role}: shown once, store it now)")


@keys_app.command("list")
def list_keys(
    gallery: GalleryArgument,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The keys made (never the keys themselves): id, name, role, prefix, revoked."""
    from siamese.service.keys import list_keys as listed

    store = _store(gallery)
    try:
        records = listed(store)
    finally:
        store.close()
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in records]))
        return
    for r in records:
        state = f"revoked {r.revoked_at}" if r.revoked_at else "active"
        typer.echo(f"{r.id}\t{r.role}\t{r.prefix}…\t{r.name}\t{r.created_at}\t{state}")


@keys_app.command("revoke")
def revoke_key(
    gallery: GalleryArgument,
    key_id: Annotated[int, typer.Argument(help="The key's id (from `keys list`).")],
) -> None:
    """Revoke a key: every worker refuses it from its next request."""
    from siamese.service.keys import revoke_key as revoke

    store = _store(gallery)
    try:
        revoke(store, key_id)
    finally:
        store.close()
    typer.echo(f"revoked key {key_id}")
