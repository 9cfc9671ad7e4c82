"""The recognition service under load, faults and micro-batching, on loopback (issue 16).

A real `siamese serve` process on the face model (`configs/face_pretrained.yaml`: dlib's face
network behind HOG detection and 5-point alignment), with galleries in SQLite and in a
throwaway PostgreSQL cluster; the clients are asyncio + httpx in this process.

- load: 1, 8 and 32 concurrent clients for a fixed time each; every client identifies
  celebrity photos and, one request in ten, enrolls a new person; requests/s, p50/p95/p99
  latency, status counts. Afterwards every acknowledged enrollment (201) must be in the database
  and be found by identifying its photo: "lost" counts those that are not.
- batching: 32 clients identifying, with micro-batching (--max-batch 32) and without
  (--max-batch 1), in the same run: requests/s of each and the ratio.
- fuzz: schemathesis against the served OpenAPI schema (no 5xx; every status, content type
  and body as documented).
- faults: the server SIGKILLed while 8 clients enroll, then restarted: acknowledged enrollments
  missing afterwards, SQLite's integrity check; PostgreSQL stopped for 3 s under load: the
  statuses seen (503 while it is down, no other 5xx), and whether the service answers again
  without being restarted.

Writes `benchmarks/results/service.json` and BENCHMARKS.md's service section.

    python benchmarks/bench_service.py             # about 15 minutes
    python benchmarks/bench_service.py fuzz        # the fuzzing alone
    python benchmarks/bench_service.py publish     # the tables again, from service.json
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
# isort: split
from machine import describe_machine
from markdown_tables import publish_results, replace_section
from serve_process import ServeProcess

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RUNS = ROOT / "runs" / "bench" / "service"
CONCURRENCY = (1, 8, 32)
SECONDS = 20.0


def celebrity_photos() -> list[tuple[str, bytes]]:
    from bench_faces import celebrity_photos as photos

    return [
        (person, Path(path).read_bytes()) for split in photos().values() for path, person in split
    ]


def serve(gallery: str, *extra: str) -> ServeProcess:
    """`siamese serve GALLERY` on a free loopback port, every server's log appended to
    RUNS/servers.log (not started yet)."""
    return ServeProcess(gallery, RUNS / "servers.log", *extra)


async def client_loop(
    base: str,
    photos: list[tuple[str, bytes]],
    seconds: float,
    worker: int,
    enrol_every: int,
    results: dict[str, Any],
) -> None:
    import httpx

    deadline = time.monotonic() + seconds
    n = 0
    async with httpx.AsyncClient(base_url=base, timeout=120) as client:
        while time.monotonic() < deadline:
            _, data = photos[(worker * 7 + n) % len(photos)]
            started = time.perf_counter()
            try:
                if enrol_every and n % enrol_every == enrol_every - 1:
                    name = f"w{worker}-{n}"
                    response = await client.post(
                        "/v1/identities",
                        data={"name": name, "force": "true"},  # photos repeat across people
                        files=[("images", ("p.jpg", data, "image/jpeg"))],
                    )
                    if response.status_code == 201:
                        results["acknowledged"].append((name, (worker * 7 + n) % len(photos)))
                else:
                    response = await client.post(
                        "/v1/identify", files={"image": ("p.jpg", data, "image/jpeg")}
                    )
                status = response.status_code
            except httpx.HTTPError as err:
                status = f"connection error ({type(err).__name__})"
            results["latency"].append(time.perf_counter() - started)
            results["status"][str(status)] += 1
            n += 1


def run_clients(
    base: str, photos: list[tuple[str, bytes]], clients: int, seconds: float, enrol_every: int
) -> dict[str, Any]:
    results: dict[str, Any] = {"latency": [], "status": Counter(), "acknowledged": []}

    async def main() -> None:
        await asyncio.gather(
            *(client_loop(base, photos, seconds, w, enrol_every, results) for w in range(clients))
        )

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    latency = sorted(results["latency"])

    def quantile(q: float) -> float:
        return latency[min(len(latency) - 1, int(q * len(latency)))] if latency else float("nan")

    return {
        "clients": clients,
        "seconds": round(elapsed, 2),
        "requests": len(latency),
        "requests_per_second": len(latency) / elapsed,
        "p50_ms": 1000 * quantile(0.50),
        "p95_ms": 1000 * quantile(0.95),
        "p99_ms": 1000 * quantile(0.99),
        "status": dict(results["status"]),
        "server_errors": sum(v for k, v in results["status"].items() if k.startswith("5")),
        "acknowledged": results["acknowledged"],
    }


def lost_enrolments(base: str, acknowledged: list[tuple[str, int]], photos: list) -> int:
    """Acknowledged enrollments that are not in the gallery, or not found by their photo."""
    import httpx

    names = set()
    offset = 0
    while True:
        page = httpx.get(f"{base}/v1/identities", params={"offset": offset, "limit": 500}).json()
        names |= {item["name"] for item in page["items"]}
        offset += 500
        if offset >= page["total"]:
            break
    lost = 0
    for name, index in acknowledged:
        if name not in names:
            lost += 1
            continue
        answer = httpx.post(
            f"{base}/v1/identify",
            params={"k": 100},
            files={"image": ("p.jpg", photos[index][1], "image/jpeg")},
            timeout=60,
        ).json()["results"][0]
        if name not in {c["identity"] for c in answer["candidates"]}:
            lost += 1
    return lost


def new_gallery(model: Path, location: str) -> str:
    from siamese.recognition import Gallery, Recognizer

    Gallery.create(location, Recognizer.load(model), far=1e-2).close()
    return location


def main() -> None:
    if not os.environ.get("SIAMESE_DATA_DIR"):
        raise SystemExit("set SIAMESE_DATA_DIR to the directory with the datasets")
    from postgres_server import Postgres, _bindir
    from siamese.config import load_config
    from siamese.training.training_run import train_run

    shutil.rmtree(RUNS, ignore_errors=True)
    RUNS.mkdir(parents=True)
    model = RUNS / "faces"
    train_run(load_config(ROOT / "configs" / "face_pretrained.yaml"), model, quiet=True)
    photos = celebrity_photos()
    bindir = _bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL's server binaries are needed (pg_config --bindir)")
    cluster_root = Path(tempfile.mkdtemp(prefix="siamese-bench-pg-"))
    postgres = Postgres(bindir, cluster_root / "cluster")
    postgres.init()
    postgres.start()
    document: dict[str, Any] = {
        "benchmark": "service",
        "date": time.strftime("%Y-%m-%d"),
        "machine": describe_machine(),
        "model": "configs/face_pretrained.yaml (dlib face ResNet port, HOG + 5-point alignment)",
        "photos": len(photos),
        "seconds_per_level": SECONDS,
    }
    try:
        load = []
        for database in ("sqlite", "postgresql"):
            for clients in CONCURRENCY:
                location = (
                    str(RUNS / f"load-{clients}.sqlite")
                    if database == "sqlite"
                    else postgres.database()
                )
                server = serve(new_gallery(model, location))
                server.start()
                row = run_clients(server.base, photos, clients, SECONDS, enrol_every=10)
                row["lost"] = lost_enrolments(server.base, row["acknowledged"], photos)
                row["database"] = database
                row["enrolled"] = len(row.pop("acknowledged"))
                server.stop()
                load.append(row)
                print(
                    f"load {database} {clients:>2} clients: {row['requests_per_second']:.1f} req/s, "
                    f"p50 {row['p50_ms']:.0f} ms, p99 {row['p99_ms']:.0f} ms, 5xx "
                    f"{row['server_errors']}, lost {row['lost']}/{row['enrolled']}",
                    flush=True,
                )
        document["load"] = load

        batching = {}
        for name, limit in (
            ("micro-batched (--max-batch 32)", "32"),
            ("one by one (--max-batch 1)", "1"),
        ):
            server = serve(
                new_gallery(model, str(RUNS / f"batch-{limit}.sqlite")), "--max-batch", limit
            )
            server.start()
            row = run_clients(server.base, photos, 32, SECONDS, enrol_every=0)
            row.pop("acknowledged")
            server.stop()
            batching[name] = row
            print(f"batching {name}: {row['requests_per_second']:.1f} req/s", flush=True)
        values = list(batching.values())
        document["batching"] = {
            "rows": batching,
            "ratio": values[0]["requests_per_second"] / values[1]["requests_per_second"],
        }

        # SIGKILL during enrollments, then a restart on the same SQLite file
        location = str(RUNS / "kill.sqlite")
        server = serve(new_gallery(model, location))
        server.start()
        results: dict[str, Any] = {"latency": [], "status": Counter(), "acknowledged": []}

        async def enrol_then_kill() -> None:
            tasks = [
                asyncio.create_task(client_loop(server.base, photos, 30, w, 1, results))
                for w in range(8)
            ]
            await asyncio.sleep(6)
            await asyncio.to_thread(server.kill)  # SIGKILL: no shutdown of any kind
            await asyncio.gather(*tasks)

        asyncio.run(enrol_then_kill())
        integrity = sqlite3.connect(location).execute("PRAGMA integrity_check").fetchone()[0]
        server.start()
        lost = lost_enrolments(server.base, results["acknowledged"], photos)
        stored = len(
            __import__("httpx")
            .get(f"{server.base}/v1/identities", params={"limit": 500})
            .json()["items"]
        )
        server.stop()
        document["kill"] = {
            "acknowledged": len(results["acknowledged"]),
            "stored_after_restart": stored,
            "lost": lost,
            "sqlite_integrity": integrity,
            "statuses_seen": dict(results["status"]),
        }
        print(f"kill: {document['kill']}", flush=True)

        # PostgreSQL stopped for 3 s under load
        server = serve(new_gallery(model, postgres.database()))
        server.start()
        results = {"latency": [], "status": Counter(), "acknowledged": []}

        async def load_through_outage() -> None:
            tasks = [
                asyncio.create_task(client_loop(server.base, photos, 20, w, 5, results))
                for w in range(8)
            ]
            await asyncio.sleep(5)
            await asyncio.to_thread(postgres.stop)
            await asyncio.sleep(3)
            await asyncio.to_thread(postgres.start)
            await asyncio.gather(*tasks)

        asyncio.run(load_through_outage())
        import httpx

        ready = httpx.get(f"{server.base}/readyz").status_code
        lost = lost_enrolments(server.base, results["acknowledged"], photos)
        server.stop()
        document["postgres_restart"] = {
            "statuses_seen": dict(results["status"]),
            "other_5xx": sum(
                v for k, v in results["status"].items() if k.startswith("5") and k != "503"
            ),
            "ready_after": ready,
            "acknowledged": len(results["acknowledged"]),
            "lost": lost,
        }
        print(f"postgres restart: {document['postgres_restart']}", flush=True)
        document["fairness"] = fairness(model, photos)
        document["fairness"]["date"] = document["date"]
        document["fuzz"] = fuzz(model)
        print(f"fuzz: {document['fuzz']}", flush=True)
    finally:
        postgres.stop()
        shutil.rmtree(cluster_root, ignore_errors=True)
    publish(document)


# ------------------------------------------------------------------------------------------
# Fairness and overload (issue 26): the service against the pipeline's own throughput


def pipeline_throughput(model: Path, photos: list[tuple[str, bytes]], seconds: float) -> dict:
    """Photos → descriptors with no server: the recogniser the service runs (same engine),
    one photo at a time on as many threads as cores (the service's own layout), for
    `seconds`: the machine's limit for what the service does per identification."""
    import threading

    from siamese.export.serving_engine import load_serving_recognizer

    recognizer, engine = load_serving_recognizer(model, "cpu")
    threads = len(os.sched_getaffinity(0))
    done = [0] * threads
    stop = time.monotonic() + seconds

    def work(worker: int) -> None:
        n = worker
        while time.monotonic() < stop:
            _, data = photos[n % len(photos)]
            prepared = recognizer.prepare_images([data], False, ["p.jpg"])
            recognizer.embed_prepared(prepared.x)
            done[worker] += 1
            n += threads

    _, data = photos[0]
    recognizer.embed_prepared(recognizer.prepare_images([data], False, ["p.jpg"]).x)  # warm
    started = time.perf_counter()
    workers = [threading.Thread(target=work, args=(w,)) for w in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - started
    return {
        "faces_per_second": sum(done) / elapsed,
        "faces": sum(done),
        "threads": threads,
        "engine": engine.engine,
    }


def _quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def _summary(results: dict[str, Any], elapsed: float) -> dict[str, Any]:
    accepted, refused = results["accepted"], results["refused"]
    return {
        "seconds": round(elapsed, 2),
        "served": len(accepted),
        "served_per_second": len(accepted) / elapsed,
        "p50_ms": 1000 * _quantile(accepted, 0.50),
        "p95_ms": 1000 * _quantile(accepted, 0.95),
        "p99_ms": 1000 * _quantile(accepted, 0.99),
        "refused": len(refused),
        "refused_p99_ms": 1000 * _quantile(refused, 0.99) if refused else None,
        "status": dict(results["status"]),
        "server_errors": sum(
            v for k, v in results["status"].items() if k.startswith("5") and k != "503"
        ),
    }


async def _identify(client: Any, data: bytes, results: dict[str, Any]) -> float | None:
    """One identification; its latency lands in accepted or refused; Retry-After or None."""
    import httpx

    started = time.perf_counter()
    try:
        response = await client.post("/v1/identify", files={"image": ("p.jpg", data, "image/jpeg")})
        status: str = str(response.status_code)
    except httpx.HTTPError as err:
        response, status = None, f"connection error ({type(err).__name__})"
    seconds = time.perf_counter() - started
    results["status"][status] += 1
    if status in ("503", "429"):
        results["refused"].append(seconds)
        return float(response.headers.get("Retry-After", "1"))
    results["accepted"].append(seconds)
    return None


def closed_loop(base: str, photos: list, clients: int, seconds: float) -> dict[str, Any]:
    """`clients` each identifying, one request after the other; a refused client waits the
    Retry-After it was given (as a well-behaved client does) before its next request."""
    import httpx

    results: dict[str, Any] = {"accepted": [], "refused": [], "status": Counter()}

    async def client_task(worker: int) -> None:
        deadline = time.monotonic() + seconds
        n = worker * 7
        async with httpx.AsyncClient(base_url=base, timeout=120) as client:
            while time.monotonic() < deadline:
                retry = await _identify(client, photos[n % len(photos)][1], results)
                n += 1
                if retry is not None:
                    await asyncio.sleep(min(retry, max(0.0, deadline - time.monotonic())))

    async def run() -> None:
        await asyncio.gather(*(client_task(w) for w in range(clients)))

    started = time.perf_counter()
    asyncio.run(run())
    return {"clients": clients, **_summary(results, time.perf_counter() - started)}


def open_loop(base: str, photos: list, rate: float, seconds: float) -> dict[str, Any]:
    """Poisson arrivals at `rate` a second for `seconds` (each arrival one identification,
    whatever the others are doing): what a capacity planner reads."""
    import random

    import httpx

    results: dict[str, Any] = {"accepted": [], "refused": [], "status": Counter()}
    generator = random.Random(0)

    async def run() -> None:
        limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200)
        async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as client:
            tasks, n = [], 0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                tasks.append(
                    asyncio.create_task(_identify(client, photos[n % len(photos)][1], results))
                )
                n += 1
                await asyncio.sleep(generator.expovariate(rate))
            await asyncio.gather(*tasks)

    started = time.perf_counter()
    asyncio.run(run())
    return {"offered_per_second": rate, **_summary(results, time.perf_counter() - started)}


def fairness(model: Path, photos: list[tuple[str, bytes]]) -> dict[str, Any]:
    """The issue-26 goals in one run: the pipeline alone, then the service at 8 and 32
    closed-loop clients and under Poisson arrivals at 50 % and 90 % of its capacity."""
    pipeline = pipeline_throughput(model, photos, SECONDS)
    print(f"pipeline alone: {pipeline['faces_per_second']:.1f} faces/s", flush=True)
    server = serve(new_gallery(model, str(RUNS / "fairness.sqlite")))
    server.start()
    try:
        closed_loop(server.base, photos, 1, 5.0)  # warm-up: not reported
        closed = [closed_loop(server.base, photos, c, SECONDS) for c in (8, 32)]
        capacity = closed[0]["served_per_second"]
        opened = [open_loop(server.base, photos, share * capacity, SECONDS) for share in (0.5, 0.9)]
        import httpx

        engine = httpx.get(f"{server.base}/v1/model").json()["engine"]
    finally:
        server.stop()
    for row in closed:
        row["ratio_to_pipeline"] = row["served_per_second"] / pipeline["faces_per_second"]
        row["p99_over_p50"] = row["p99_ms"] / row["p50_ms"]
        print(f"closed loop {row}", flush=True)
    for row, share in zip(opened, (0.5, 0.9), strict=True):
        row["share_of_capacity"] = share
        print(f"open loop {row}", flush=True)
    eight, many = closed
    goals = {
        "8 clients: p99 ≤ 3× p50": eight["p99_over_p50"] <= 3,
        "8 clients: throughput ≥ 85 % of the pipeline's": eight["ratio_to_pipeline"] >= 0.85,
        "32 clients: p99 of accepted requests ≤ 1 s": many["p99_ms"] <= 1000,
    }
    return {
        "pipeline": pipeline,
        "engine": engine,
        "closed_loop": closed,
        "open_loop": opened,
        "goals": goals,
    }


def fuzz(model: Path) -> dict[str, Any]:
    """schemathesis against the served OpenAPI schema, with an admin key: the cases it
    generated and how many failed a check (a 5xx, or a status, content type or body the
    schema does not document)."""
    import re

    from siamese.recognition.gallery_store import GalleryStore
    from siamese.service.keys import create_key

    for old in RUNS.glob("fuzz.sqlite*"):  # a previous run's gallery
        old.unlink()
    location = new_gallery(model, str(RUNS / "fuzz.sqlite"))
    store = GalleryStore.open(location)
    _, key = create_key(store, "admin", "fuzzer")
    store.close()
    server = serve(location)
    server.start()
    checks = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
    started = time.perf_counter()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "st"), "run", f"{server.base}/openapi.json",
         "--header", f"X-API-Key: {key}", "--checks", checks, "--max-examples", "50",
         "--seed", "1", "--max-time", "300", "--workers", "1", "--warnings", "off"],
        capture_output=True,
        text=True,
    )  # fmt: skip
    seconds = time.perf_counter() - started
    server.stop()
    summary = re.search(r"(\d+) generated, (\d+) passed", done.stdout)
    errors = re.search(r"(\d+) errors? in", done.stdout)  # operations it could not test
    return {
        "checks": checks.split(","),
        "generated": int(summary.group(1)) if summary else None,
        "passed": int(summary.group(2)) if summary else None,
        "operations_in_error": int(errors.group(1)) if errors else 0,
        "exit_status": done.returncode,
        "seconds": round(seconds, 1),
        "schemathesis": __import__("importlib.metadata").metadata.version("schemathesis"),
    }


def fairness_table(f: dict[str, Any]) -> list[str]:
    """The fairness and overload rows (issue 26), ratios to the pipeline in the same run."""
    pipe = f["pipeline"]
    lines = [
        f"Fairness and overload ({f['date']}): the face pipeline alone, no server, "
        f"{pipe['threads']} threads, {pipe['engine']}: **{pipe['faces_per_second']:.1f} "
        f"faces/s**; the service runs {f['engine']['engine']}. Identification only; a refused "
        "client waits its Retry-After; latency of served requests:",
        "",
        "| load | served/s | of the pipeline's | p50 | p99 | p99 / p50 | refused (p99 to refuse) "
        "| other 5xx |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in f["closed_loop"]:
        load = f"{row['clients']} clients, closed loop"
        lines.append(_fairness_row(load, row, pipe))
    for row in f["open_loop"]:
        load = (
            f"Poisson {row['offered_per_second']:.1f}/s ({100 * row['share_of_capacity']:.0f} % "
            "of the 8-client throughput)"
        )
        lines.append(_fairness_row(load, row, pipe))
    goals = "; ".join(f"{k}: {'met' if v else '**not met**'}" for k, v in f["goals"].items())
    lines += ["", f"Goals: {goals}."]
    return lines


def _fairness_row(load: str, row: dict[str, Any], pipe: dict[str, Any]) -> str:
    refused = f"{row['refused']} ({row['refused_p99_ms']:.0f} ms)" if row["refused"] else "0"
    return (
        f"| {load} | {row['served_per_second']:.1f} | "
        f"{100 * row['served_per_second'] / pipe['faces_per_second']:.0f} % | "
        f"{row['p50_ms']:.0f} ms | {row['p99_ms']:.0f} ms | "
        f"{row['p99_ms'] / row['p50_ms']:.1f} | {refused} | {row['server_errors']} |"
    )


def _served(row: dict[str, Any]) -> tuple[float, int, int]:
    """(served a second, refused with 503, other 5xx) of a load row: since issue 26 a full
    service refuses at once, and a refusal is not a request served."""
    status = row["status"]
    refused = int(status.get("503", 0))
    other = sum(v for k, v in status.items() if k.startswith("5") and k != "503")
    served = sum(v for k, v in status.items() if k[:1] in "24")
    return served / row["seconds"], refused, other


def publish(document: dict[str, Any]) -> None:
    publish_results("service", document, section(document))
    replace_section(ROOT / "README.md", "service-results", readme_table(document))


def _batching_ratio(batching: dict[str, Any]) -> float:
    batched, single = batching["rows"].values()
    return _served(batched)[0] / _served(single)[0]


def readme_table(document: dict[str, Any]) -> str:
    lines = [
        "| database | clients | served/s | p50 | p99 | refused (503) | other 5xx | lost enrollments |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in document["load"]:
        served, refused, other = _served(row)
        lines.append(
            f"| {row['database']} | {row['clients']} | {served:.1f} | "
            f"{row['p50_ms']:.0f} ms | {row['p99_ms']:.0f} ms | {refused} | {other} | "
            f"{row['lost']} of {row['enrolled']} |"
        )
    b = document["batching"]
    k, p = document["kill"], document["postgres_restart"]
    lines += [
        "",
        "Latencies are of every answer, refusals included; clients that are refused ask "
        "again at once (the fairness table below has clients that honour Retry-After). "
        f"Micro-batching at 32 clients: {_batching_ratio(b):.2f}× the served/s of one-by-one. SIGKILL "
        f"during enrollments: {k['lost']} of {k['acknowledged']} acknowledged enrollments lost "
        f"(SQLite integrity: {k['sqlite_integrity']}). PostgreSQL stopped 3 s under load: "
        f"{p['other_5xx']} 5xx other than 503, ready again without a restart "
        f"(/readyz {p['ready_after']}).",
    ]
    f = document.get("fuzz")
    if f:
        lines[-1] += (
            f" Fuzzing with schemathesis: {f['passed']:,} of {f['generated']:,} generated "
            "requests passed (no 5xx; statuses, content types and bodies as documented); "
            f"operations it could not test: {f.get('operations_in_error', 'not counted')}."
        )
    if document.get("fairness"):
        lines += ["", *fairness_table(document["fairness"])]
    return "\n".join(lines)


def section(document: dict[str, Any]) -> str:
    m = document["machine"]
    lines = [
        f"A real `siamese serve` on loopback with the face model ({document['model']}); "
        f"asyncio + httpx clients in another process on the same {m['cores']} cores; "
        f"{document['seconds_per_level']:.0f} s per level; one request in ten enrolls a new "
        "person, the others identify a celebrity photo. Lost: acknowledged (201) enrollments "
        "not in the gallery or not found by their photo afterwards.",
        "",
        "| database | clients | served/s | p50 | p95 | p99 | refused (503) | other 5xx "
        "| lost / enrolled |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in document["load"]:
        served, refused, other = _served(row)
        lines.append(
            f"| {row['database']} | {row['clients']} | {served:.1f} | "
            f"{row['p50_ms']:.0f} ms | {row['p95_ms']:.0f} ms | {row['p99_ms']:.0f} ms | "
            f"{refused} | {other} | {row['lost']} / {row['enrolled']} |"
        )
    b = document["batching"]
    rows = b["rows"]
    lines += [
        "",
        "Latencies are of every answer, refusals included (a refused client asks again at "
        "once here). Micro-batching, 32 clients identifying (same run): "
        + "; ".join(
            f"{k} {_served(v)[0]:.1f} served/s, {_served(v)[1]} refused (p50 {v['p50_ms']:.0f} ms)"
            for k, v in rows.items()
        )
        + f": **{_batching_ratio(b):.2f}×** the served/s.",
        "",
    ]
    k = document["kill"]
    lines.append(
        f"SIGKILL during enrollments by 8 clients, then a restart: {k['acknowledged']} enrollments "
        f"acknowledged, {k['stored_after_restart']} identities stored, **{k['lost']} lost**; "
        f"SQLite integrity check: {k['sqlite_integrity']}."
    )
    p = document["postgres_restart"]
    lines.append(
        f"PostgreSQL stopped for 3 s under 8 clients: statuses {p['statuses_seen']}; other 5xx "
        f"than 503: {p['other_5xx']}; /readyz afterwards {p['ready_after']} without restarting "
        f"the service; lost {p['lost']} of {p['acknowledged']} acknowledged enrollments."
    )
    f = document.get("fuzz")
    if f:
        lines.append(
            f"Fuzzing (schemathesis {f['schemathesis']}, checks {', '.join(f['checks'])}, with an "
            f"admin key): {f['generated']} generated requests, {f['passed']} passed "
            f"(exit status {f['exit_status']})."
        )
    if document.get("fairness"):
        lines += ["", *fairness_table(document["fairness"])]
    lines += ["", f"Measured {document['date']} on {m['cpu']} ({m['cores']} cores)."]
    return "\n".join(lines)


if __name__ == "__main__":
    if sys.argv[1:] == ["publish"]:  # the tables again, from results/service.json
        publish(json.loads((HERE / "results" / "service.json").read_text()))
    elif sys.argv[1:] == ["fairness"]:  # fairness and overload alone, into service.json
        from siamese.config import load_config
        from siamese.training.training_run import train_run

        RUNS.mkdir(parents=True, exist_ok=True)
        faces = RUNS / "faces"
        if not (faces / "model.json").is_file():
            train_run(load_config(ROOT / "configs" / "face_pretrained.yaml"), faces, quiet=True)
        results = json.loads((HERE / "results" / "service.json").read_text())
        results["fairness"] = fairness(faces, celebrity_photos())
        results["fairness"]["date"] = time.strftime("%Y-%m-%d")
        publish(results)
    elif sys.argv[1:] == ["fuzz"]:  # the fuzzing alone, into results/service.json
        from siamese.config import load_config
        from siamese.training.training_run import train_run

        RUNS.mkdir(parents=True, exist_ok=True)
        faces = RUNS / "faces"
        if not (faces / "model.json").is_file():
            train_run(load_config(ROOT / "configs" / "face_pretrained.yaml"), faces, quiet=True)
        results = json.loads((HERE / "results" / "service.json").read_text())
        results["fuzz"] = fuzz(faces)
        print(results["fuzz"])
        publish(results)
    else:
        main()
