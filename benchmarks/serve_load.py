"""A burst of clients against ``lookalike serve``: throughput, latency percentiles, errors, same answers.

Loopback only, bounded in count and time. The script indexes the bundled gallery (36 photos) into a fresh
dataset, starts ``lookalike serve`` on a free port of 127.0.0.1 (``--workers N`` processes), and for each
concurrency (``--clients``, default 1 16 64) runs that many client threads, each uploading a 250x250 LFW
photo to ``POST /v1/search`` ``--requests`` times in all (spread over the clients). A ``503 busy`` answer is
retried after its ``Retry-After``, and counted. It reports requests/s, p50/p95/p99 latency (per request,
retries included), errors (any other failure), throughput relative to one client, and whether every answer
equals the one-client answer for its photo.

    python benchmarks/serve_load.py --workers 1 --json benchmarks/results/serve-load.json
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from machine import print_banner

REPO = Path(__file__).resolve().parents[1]
QUERIES = sorted((REPO / "tests" / "data" / "queries").glob("*.jpg"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def multipart(photo: bytes) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="top_k"\r\n\r\n5\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="q.jpg"\r\n'
            "Content-Type: image/jpeg\r\n\r\n"
        ).encode()
        + photo
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def one_search(port: int, body: bytes, ctype: str, deadline: float) -> tuple[int, Any, int]:
    """(status, answer rows, retries) for one search, retrying 503s after their Retry-After."""
    retries = 0
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        try:
            conn.request("POST", "/v1/search", body=body, headers={"Content-Type": ctype})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        if resp.status == 503 and time.monotonic() < deadline:
            retries += 1
            time.sleep(float(resp.getheader("Retry-After") or 1))
            continue
        rows = None
        if resp.status == 200:
            rows = [(r["face_id"], round(r["distance"], 5)) for r in json.loads(data)["results"]]
        return resp.status, rows, retries


def run_level(port: int, clients: int, requests: int, bodies: list[tuple[bytes, str]], budget_s: float) -> dict:
    latencies: list[float] = []
    answers: list[tuple[int, Any]] = []
    errors: list[str] = []
    retries = [0]
    lock = threading.Lock()
    counter = iter(range(requests))
    deadline = time.monotonic() + budget_s

    def client() -> None:
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body, ctype = bodies[i % len(bodies)]
            t0 = time.perf_counter()
            try:
                status, rows, r = one_search(port, body, ctype, deadline)
            except OSError as err:
                with lock:
                    errors.append(f"{type(err).__name__}: {err}")
                continue
            with lock:
                latencies.append(time.perf_counter() - t0)
                retries[0] += r
                if status == 200:
                    answers.append((i % len(bodies), rows))
                else:
                    errors.append(f"HTTP {status}")

    threads = [threading.Thread(target=client) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    lat = np.array(latencies) * 1e3 if latencies else np.zeros(1)
    return {
        "clients": clients,
        "requests": len(latencies) + len([e for e in errors if not e.startswith("HTTP")]),
        "ok": len(answers),
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:5],
        "retried_503": retries[0],
        "seconds": round(wall, 2),
        "requests_per_s": round(len(answers) / wall, 2),
        "p50_ms": round(float(np.percentile(lat, 50)), 1),
        "p95_ms": round(float(np.percentile(lat, 95)), 1),
        "p99_ms": round(float(np.percentile(lat, 99)), 1),
        "_answers": answers,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 16, 64])
    ap.add_argument("--requests", type=int, default=192, help="requests per concurrency level (bounded)")
    ap.add_argument("--budget-s", type=float, default=180.0, help="time limit per level (seconds)")
    ap.add_argument("--workers", type=int, default=1, help="lookalike serve --workers")
    ap.add_argument("--max-queue", type=int, default=64)
    ap.add_argument("--json", dest="json_out")
    args = ap.parse_args(argv)
    machine = print_banner()

    import lookalike

    tmp = Path(tempfile.mkdtemp(prefix="lookalike-load-"))
    dataset = tmp / "load.duckdb"
    lookalike.open(dataset).index(str(REPO / "tests" / "data" / "gallery"))
    port = free_port()
    log = (tmp / "serve.log").open("wb")
    cmd = [sys.executable, "-m", "lookalike.cli", "serve", "--dataset", str(dataset), "--port", str(port)]
    cmd += ["--workers", str(args.workers), "--max-queue", str(args.max_queue)]
    env = {k: v for k, v in os.environ.items() if k not in ("LOOKALIKE_TOKEN",)}
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("lookalike serve did not start: " + (tmp / "serve.log").read_text()[-2000:])
            time.sleep(0.2)
        bodies = [multipart(p.read_bytes()) for p in QUERIES]
        print(f"lookalike serve --workers {args.workers} --max-queue {args.max_queue}; {len(bodies)} query photos")
        reference: dict[int, Any] = {}
        for i, (body, ctype) in enumerate(bodies):
            status, rows, _ = one_search(port, body, ctype, time.monotonic() + 60)
            assert status == 200, status
            reference[i] = rows
        levels = []
        base = None
        print(
            f"{'clients':>7} {'ok':>5} {'errors':>6} {'503s':>5} {'req/s':>7} {'x1':>5} {'p50 ms':>8} {'p95 ms':>8} "
            f"{'p99 ms':>8} same"
        )
        for c in args.clients:
            r = run_level(port, c, args.requests, bodies, args.budget_s)
            same = all(rows == reference[i] for i, rows in r.pop("_answers"))
            base = base or r["requests_per_s"]
            r["relative_to_one_client"] = round(r["requests_per_s"] / base, 2) if base else None
            r["same_answers"] = same
            levels.append(r)
            print(
                f"{c:>7} {r['ok']:>5} {r['errors']:>6} {r['retried_503']:>5} {r['requests_per_s']:>7.2f} "
                f"{r['relative_to_one_client']:>5} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f} {same}",
                flush=True,
            )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json_out:
        payload = {"machine": machine, "workers": args.workers, "max_queue": args.max_queue, "levels": levels}
        Path(args.json_out).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
