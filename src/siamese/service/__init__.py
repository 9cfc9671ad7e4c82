"""The recognition service: `siamese serve GALLERY...` — a REST API (FastAPI) over one or
several galleries, with API keys, upload limits, JSON errors, micro-batched inference, Prometheus metrics and a
web page.

- `app`: `create_app(ServiceSettings)`, the factory composing everything below.
- `settings`: `ServiceSettings`, what every worker process receives.
- `runtime`: `Service`, what the app holds while it runs (gallery, lock, thread pool,
  batcher, metrics) and the prepare → embed steps every recognising route shares.
- `dependencies`: the running service, the caller's role from the API key, checked uploads.
- `routes/`: one `APIRouter` per resource (recognition, identities, keys, galleries,
  status, page).
- `error_handlers`, `middleware`: every failure as the JSON error body; the upload limit and
  the request metrics.
- `admission`: the stages (prepare, embed, gallery) in arrival order, bounded, refusing at
  once (503 + Retry-After); request deadlines.
- `rate_limits`: per-key token buckets (429 + Retry-After).
- `batching`: `MicroBatcher`, concurrent requests sharing forward passes.
- `keys`: API keys (hashed, in the gallery's database) and their roles.
- `errors`: the JSON error body and its stable codes; no traceback or server path leaks.
- `metrics`: Prometheus counters and histograms.
- `schemas`: the response bodies the OpenAPI schema documents.
- `server`: running it under uvicorn (one or several workers).
- `web/`: the page at `/` (plain HTML, JS and CSS; no build step).

Layering: service imports recognition, data, errors and faces (through recognition); only
cli imports it. Needs the `serve` extra (FastAPI, uvicorn, python-multipart,
prometheus_client; psycopg for PostgreSQL galleries).
"""
