"""Requests per second of the web tier under concurrent read clients, on loopback.

Target (issue 11, DESIGN.md): with 20 concurrent clients reading the demo dataset (item
lists, item detail, search by item, query-language filters), >= 150 requests/s with
p99 <= 300 ms and no errors, on this 2-core machine.

Starts the real service (`manage.py serve`, the web server as `make run` sizes it, or as
given) on its own data directory (var/bench-load: its own embedded PostgreSQL, media and
demo), waits for the demo dataset to be ingested, gives it vectors (random unit vectors
of a custom model: the load is the same as with CLIP's, without an hour of embedding),
then runs client processes against it for a bounded time and number of requests. Only
loopback is used. Not part of CI.

    .venv/bin/python bench/load.py [--clients 20] [--seconds 30] [--web-processes N --threads T]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import requests
from _setup import ROOT, free_port, report

TARGET_RPS = 150.0
TARGET_P99_MS = 300.0
QUERY = 'annotations.car >= 2 AND metadata.weather = "rain"'


def _call(session: requests.Session, base: str, method: str, path: str, body: Any = None) -> Any:
    response = session.request(method, base + path, json=body, timeout=60)
    response.raise_for_status()
    return response.json()


def _session(token: str) -> requests.Session:
    session = requests.Session()  # keep-alive, as a pipeline's client would
    session.headers["Authorization"] = f"Bearer {token}"
    return session


def _prepare(data_dir: Path) -> tuple[int, list[int], int]:
    """Wait for the demo's ingest, give its items vectors; (dataset, item ids, slice id)."""
    os.environ["NUCLEUS_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nucleus.settings")
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import numpy as np
    from django.db import DatabaseError, connection

    from curation.models import Dataset, Item, Job, Slice
    from embeddings import vectors as vec
    from embeddings.models import EmbeddingModel, ModelKind
    from embeddings.services import dataset_default_set

    deadline = time.monotonic() + 1800
    while True:
        try:
            dataset = Dataset.objects.order_by("id").first()
            job = Job.objects.filter(dataset=dataset, kind="ingest").order_by("-id").first()
        except DatabaseError:  # serve has not migrated the new database yet
            connection.close()
            dataset = job = None
        # Ingest done, and the embedding job it queued too: the measured run has the
        # machine to itself.
        if job is not None and job.is_finished and not _active_jobs(Job):
            break
        if time.monotonic() > deadline:
            raise SystemExit("the demo was not ingested within 30 minutes")
        time.sleep(2)
    assert dataset is not None
    ids = list(Item.objects.filter(dataset=dataset).order_by("id").values_list("id", flat=True))
    model = EmbeddingModel.objects.filter(dataset=dataset, name="bench-load").first()
    if model is None:
        model = EmbeddingModel.objects.create(
            name="bench-load", dataset=dataset, kind=ModelKind.CUSTOM, dimension=512
        )
        rng = np.random.default_rng(0)
        vectors = vec.normalize(rng.standard_normal((len(ids), 512)).astype(np.float32))
        vec.vectors_write(model=model, dataset=dataset, item_ids=ids, vectors=vectors)
        vec.vector_index_ensure(model=model, dataset=dataset)
    dataset_default_set(dataset=dataset, model=model)
    dynamic = Slice.objects.filter(dataset=dataset, name="bench-load query").first()
    slice_id = dynamic.pk if dynamic is not None else 0
    return dataset.pk, ids, slice_id


def _tree_cpu(root: int) -> dict[str, float]:
    """CPU seconds (user + system) of a process and all its descendants, by role.

    The roles of the service: `web` (gunicorn's processes), `workers` (job workers and
    `serve` itself), and of the embedded server: `database` (the postmaster, its backends,
    and the children it reaped: a backend that ended during the run still counts).
    """
    totals = {"web": 0.0, "workers": 0.0}
    try:
        procs = [psutil.Process(root), *psutil.Process(root).children(recursive=True)]
    except psutil.Error:
        return totals
    for proc in procs:
        try:
            times = proc.cpu_times()
            role = "web" if "gunicorn" in " ".join(proc.cmdline()) else "workers"
        except psutil.Error:
            continue
        totals[role] += times.user + times.system
    return totals


def _database_cpu(pgdata: Path) -> float:
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split()[0])
        master = psutil.Process(pid)
        times = master.cpu_times()
        total = times.user + times.system + times.children_user + times.children_system
        for proc in master.children(recursive=True):
            try:
                child = proc.cpu_times()
            except psutil.Error:
                continue
            total += child.user + child.system
    except (OSError, ValueError, IndexError, psutil.Error):
        return 0.0
    return total


def _cpu_snapshot(server: int, pgdata: Path) -> dict[str, float]:
    """CPU seconds so far: the service's roles, the database, and this process's reaped
    children (the client processes of the pool, once it has closed) and itself."""
    own = os.times()
    return {
        **_tree_cpu(server),
        "database": _database_cpu(pgdata),
        "clients": own.children_user + own.children_system + own.user + own.system,
        "machine": sum(psutil.cpu_times()[:3]),  # user, nice, system: all processes
    }


def _active_jobs(job_model: Any) -> bool:
    from curation.models import FINISHED_JOB_STATUSES

    return bool(job_model.objects.exclude(status__in=FINISHED_JOB_STATUSES).exists())


def _client(
    args: tuple[str, str, int, list[int], int, float, int, int],
) -> list[tuple[str, float, int]]:
    """One client process: `threads` clients in a loop until the deadline or the count."""
    import threading

    base, token, dataset, ids, slice_id, stop_at, count, threads = args
    results: list[tuple[str, float, int]] = []
    lock = threading.Lock()
    ds = f"/api/v1/datasets/{dataset}"

    def run(seed: int) -> None:
        rng = random.Random(seed)
        session = _session(token)
        while time.time() < stop_at:
            with lock:
                if len(results) >= count:
                    return
            kind = rng.choice(("list", "detail", "search", "query"))
            item = rng.choice(ids)
            if kind == "list":
                method, path, body = "GET", f"{ds}/items?limit=50&metadata.weather=rain", None
            elif kind == "detail":
                method, path, body = "GET", f"{ds}/items/{item}", None
            elif kind == "search":
                method, path, body = "POST", f"{ds}/search/item", {"item_id": item, "limit": 20}
            else:
                method, path, body = "GET", f"{ds}/slices/{slice_id}/records?limit=50", None
            start = time.perf_counter()
            try:
                status = session.request(method, base + path, json=body, timeout=60).status_code
            except requests.RequestException:
                status = 0
            elapsed = (time.perf_counter() - start) * 1000
            with lock:
                results.append((kind, elapsed, status))

    workers = [threading.Thread(target=run, args=(os.getpid() * 1000 + i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time (bounded)")
    parser.add_argument("--requests", type=int, default=20000, help="at most this many")
    parser.add_argument("--web-processes", type=int, default=0, help="0: as `make run` sizes it")
    parser.add_argument("--threads", type=int, default=0, help="0: as `make run` sizes it")
    args = parser.parse_args()

    data_dir = ROOT / "var" / "bench-load"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "NUCLEUS_DATA_DIR": str(data_dir),
        "NUCLEUS_EMBEDDING_RANDOM_FALLBACK": "1",
    }
    command = [sys.executable, str(ROOT / "manage.py"), "serve", "--port", str(port)]
    if args.web_processes:
        command += ["--web-processes", str(args.web_processes)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    data_dir.mkdir(parents=True, exist_ok=True)  # before the log: var/ may not exist yet
    log = (data_dir.parent / "bench-load.log").open("w")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        dataset, ids, slice_id = _prepare(data_dir)
        from curation.management.commands.bootstrap import saved_credentials

        token = saved_credentials()["api_token"]
        _wait_up(base)
        _wait_settled(server.pid)
        if not slice_id:
            made = _call(
                _session(token),
                base,
                "POST",
                f"/api/v1/datasets/{dataset}/slices/from-query",
                {"name": "bench-load query", "query": QUERY, "dynamic": True},
            )
            slice_id = int(made["slice"]["id"])
        processes = min(args.clients, 4)
        per = [
            args.clients // processes + (1 if i < args.clients % processes else 0)
            for i in range(processes)
        ]
        # A short warm-up (connections, caches, the index), then the measured run.
        for seconds, count in ((3.0, 500), (args.seconds, args.requests)):
            stop_at = time.time() + seconds
            jobs = [
                (base, token, dataset, ids, slice_id, stop_at, count // processes, n) for n in per
            ]
            before = _cpu_snapshot(server.pid, data_dir / "pg")
            started = time.perf_counter()
            with multiprocessing.Pool(processes) as pool:
                batches = pool.map(_client, jobs)
                pool.close()
                pool.join()  # reaped: their CPU time is in os.times() now
            elapsed = time.perf_counter() - started
            after = _cpu_snapshot(server.pid, data_dir / "pg")
        results = [r for batch in batches for r in batch]
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

    times = sorted(ms for _, ms, _ in results)
    errors = sum(1 for _, _, status in results if status != 200)
    rps = len(results) / elapsed
    p50 = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    shape = f"{args.web_processes or 'auto'} processes x {args.threads or 'auto'} threads"
    print(f"\n{len(results)} requests from {args.clients} clients in {elapsed:.1f} s ({shape})")
    for kind in ("list", "detail", "search", "query"):
        mine = sorted(ms for k, ms, _ in results if k == kind)
        if mine:
            print(
                f"  {kind:7} n={len(mine):5}  p50 {statistics.median(mine):6.1f} ms  "
                f"p99 {mine[min(len(mine) - 1, int(len(mine) * 0.99))]:6.1f} ms"
            )
    cpu = {key: after[key] - before[key] for key in after}
    cpu["others"] = cpu.pop("machine") - sum(cpu.values())  # the rest of the machine
    cores = len(os.sched_getaffinity(0))
    print(
        f"  CPU seconds in the run ({elapsed * cores:.0f} core-seconds: {elapsed:.1f} s x "
        f"{cores} cores): " + ", ".join(f"{key} {value:.1f}" for key, value in cpu.items())
    )
    n = max(len(results), 1)
    print(
        f"  CPU per request: web {cpu['web'] / n * 1000:.1f} ms + database "
        f"{cpu['database'] / n * 1000:.1f} ms = {(cpu['web'] + cpu['database']) / n * 1000:.1f} ms"
        f" (clients {cpu['clients'] / n * 1000:.1f} ms); load average "
        + " ".join(f"{x:.1f}" for x in os.getloadavg())
    )
    report(
        [
            ("requests/s", f"{rps:.0f}", f">= {TARGET_RPS:.0f}", rps >= TARGET_RPS),
            ("p50", f"{p50:.0f} ms", "-", None),
            ("p99", f"{p99:.0f} ms", f"<= {TARGET_P99_MS:.0f} ms", p99 <= TARGET_P99_MS),
            ("errors", str(errors), "0", errors == 0),
        ]
    )


def _wait_settled(server: int, quiet: float = 0.3, window: float = 2.0) -> None:
    """Wait until every web process has loaded the app (its CPU time stands still while
    nothing is asked of it): /healthz answers from the first process that is ready, and
    the others, still importing, would be measured with the requests."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        before = _web_processes(server)
        time.sleep(window)
        after = _web_processes(server)
        settled = all(after[pid] - before[pid] < quiet for pid in after)
        if before and before.keys() == after.keys() and settled:
            return
    print("warning: the web processes did not settle within 5 minutes", file=sys.stderr)


def _web_processes(server: int) -> dict[int, float]:
    """CPU seconds of each gunicorn worker process (not the arbiter) under `server`."""
    found = {}
    try:
        procs = psutil.Process(server).children(recursive=True)
    except psutil.Error:
        return {}
    for proc in procs:
        try:
            if "gunicorn" in " ".join(proc.cmdline()) and "gunicorn" in " ".join(
                proc.parent().cmdline()
            ):
                times = proc.cpu_times()
                found[proc.pid] = times.user + times.system
        except psutil.Error:
            continue
    return found


def _wait_up(base: str) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if requests.get(base + "/healthz", timeout=5).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(1)
    raise SystemExit("the service did not answer within 5 minutes")


if __name__ == "__main__":
    main()
