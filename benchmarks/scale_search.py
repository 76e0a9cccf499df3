"""Lookalike's own search process on a large table: its peak memory and time, through the product.

``benchmarks/ann.py`` measures the vector index as a component. This measures what a user runs: ``lookalike
search PHOTO`` in a fresh process against a dataset of N faces with a TREE_AH index, its peak RSS and wall time.

Workload:

* N faces as ``ann.py`` makes them (``table_blocks``: LFW's gallery embeddings, then LFW embeddings under seeded
  random rotations), written as a Lookalike export (Parquet shards and ``manifest.json``; every other column
  copied from one real face row of an export of ``tests/data/gallery``, each row its own photo URI) and read into
  a new dataset with ``Dataset.import_table`` (no grouping into persons);
* a TREE_AH index (``Dataset.create_vector_index``);
* the query: George W. Bush's first usable LFW photo (``ann.py``'s query for him; his other photos are in the gallery).

Then, each in a new process (``lookalike search QUERY --json``), with the matrix cache in ``--workdir``:

1. **cold**: the table's matrix is not cached yet: it is written from DuckDB to the cache, then mapped;
2. **warm**: mapped from the cache, as every later search;
3. **exact**: ``--exact``, which reads every row.

Each prints the process's peak RSS (``ru_maxrss`` of the child) and wall time, and the search's stderr line.

    python benchmarks/scale_search.py --faces 3000000 --json benchmarks/results/scale-search.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ann import load_lfw, table_blocks, usable_mask
from lfw_common import DEFAULT_DATA
from machine import print_banner

REPO = Path(__file__).resolve().parents[1]
SHARD_ROWS = 250_000
QUERY_PERSON = "George_W_Bush"


def query_photo(embeddings: str, person: str = QUERY_PERSON) -> str:
    """``person``'s first usable LFW photo: the one ``ann.py`` (``load_lfw``) keeps out of the gallery as his query,
    while his other photos are in it."""
    z = np.load(embeddings)
    ok, _ = usable_mask(np.asarray(z["vectors"], np.float32))
    for name, good in zip(z["names"], ok, strict=True):
        if good and str(name).startswith(person + "/"):
            return str(name)
    raise SystemExit(f"no usable photo of {person} in {embeddings}")


def template_export(tmp: Path) -> tuple[pa.Table, dict]:
    """One real export (of ``tests/data/gallery``): its first face row and its manifest."""
    import lookalike

    ds = lookalike.open(tmp / "template.duckdb")
    ds.index(str(REPO / "tests" / "data" / "gallery"), cluster=False)
    ds.export_table("faces", str(tmp / "template-export"))
    manifest = json.loads((tmp / "template-export" / "manifest.json").read_text())
    rows = pq.read_table(tmp / "template-export" / manifest["shards"][0]["file"])
    face = rows.filter(pa.compute.is_valid(rows.column("embedding"))).slice(0, 1)
    return face, manifest


def write_export(folder: Path, face: pa.Table, manifest: dict, usable, gallery, n: int) -> None:
    folder.mkdir(parents=True)
    shards: list[dict] = []
    pending: list[np.ndarray] = []
    done = 0

    def flush(block: np.ndarray) -> None:
        nonlocal done
        rows = face.take(np.zeros(len(block), np.int64))
        uris = pa.array([f"synthetic://faces/{done + i:09d}.jpg" for i in range(len(block))], pa.string())
        emb = pa.FixedSizeListArray.from_arrays(pa.array(block.reshape(-1), pa.float32()), block.shape[1])
        rows = rows.set_column(rows.schema.get_field_index("uri"), rows.schema.field("uri"), uris)
        idx = rows.schema.get_field_index("embedding")
        rows = rows.set_column(idx, rows.schema.field(idx), emb.cast(rows.schema.field(idx).type))
        name = f"faces-{len(shards):05d}.parquet"
        pq.write_table(rows, folder / name, compression="snappy")
        sha = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        shards.append({**manifest["shards"][0], "file": name, "rows": len(block), "sha256": sha})
        done += len(block)

    for block in table_blocks(usable, gallery, n, np.random.default_rng(0)):
        pending.append(block)
        while sum(len(p) for p in pending) >= SHARD_ROWS:
            allv = np.concatenate(pending)
            flush(allv[:SHARD_ROWS])
            pending = [allv[SHARD_ROWS:]]
    rest = np.concatenate(pending) if pending else np.empty((0, usable.shape[1]), np.float32)
    if len(rest):
        flush(rest)
    out = {**manifest, "shards": shards, "rows": done}
    (folder / "manifest.json").write_text(json.dumps(out, indent=2))


#: Runs the CLI in this process and, as it exits, writes the process's memory (``ann.proc_status``) to the
#: file named in argv[1]; argv[2] is the benchmarks folder.
_WRAPPER = """
import json, runpy, sys
out = sys.argv.pop(1)
sys.path.insert(0, sys.argv.pop(1))
from ann import proc_status
sys.argv[0] = "lookalike"
try:
    runpy.run_module("lookalike", run_name="__main__")
finally:
    with open(out, "w") as fh:
        json.dump(proc_status(), fh)
"""


def run_search(args: list[str], env: dict[str, str], tmp: Path) -> dict[str, object]:
    """One ``lookalike search`` in a new process: wall time, its memory as it exits (peak RSS, and the private
    and file-backed parts then, in MB), the last line of its stderr and its top row."""
    mem = tmp / "mem.json"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(mem), str(Path(__file__).resolve().parent), "search", *args, "--json"],
        capture_output=True,
        env=env,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"lookalike search failed ({proc.returncode}): {proc.stderr[-2000:]}")
    status = json.loads(mem.read_text())
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    try:
        result = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        raise SystemExit(f"lookalike search printed no JSON ({err}): {proc.stdout[:500]!r}") from None
    return {
        "wall_s": wall,
        "peak_rss_mb": status["VmHWM"],
        "rss_anon_mb_at_exit": status["RssAnon"],
        "rss_file_mb_at_exit": status["RssFile"],
        "stderr": lines[-1] if lines else "",
        "result": result,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--faces", type=int, default=1_000_000)
    ap.add_argument("--workdir", default="benchmarks/cache/scale", help="dataset, export and matrix cache (reused)")
    ap.add_argument("--embeddings", default="benchmarks/cache/emb-fr-feature.npz")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    machine = print_banner()
    import lookalike

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    dataset = work / f"scale-{args.faces}.duckdb"
    cache_dir = work / "cache"
    usable, _, _, gallery, _ = load_lfw(args.embeddings)
    query = Path(DEFAULT_DATA) / "lfw" / query_photo(args.embeddings)
    record: dict[str, object] = {"machine": machine, "faces": args.faces}
    fresh = not dataset.exists()  # an existing dataset is reused: delete the workdir to start again
    ds = lookalike.open(dataset)
    if fresh:
        with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
            face, manifest = template_export(Path(tmp))
            export = work / f"export-{args.faces}"
            shutil.rmtree(export, ignore_errors=True)
            t0 = time.perf_counter()
            write_export(export, face, manifest, usable, gallery, args.faces)
            record["export_s"] = time.perf_counter() - t0
            t0 = time.perf_counter()
            report = ds.import_table(str(export), "faces", cluster=False)
            record["import_s"] = time.perf_counter() - t0
            print(f"imported {report.rows:,} rows in {record['import_s']:.0f} s", flush=True)
            shutil.rmtree(export, ignore_errors=True)
        t0 = time.perf_counter()
        ds.create_vector_index("faces", index_type="TREE_AH")
        record["index_s"] = time.perf_counter() - t0
        print(f"TREE_AH index in {record['index_s']:.0f} s", flush=True)
    shutil.rmtree(cache_dir, ignore_errors=True)
    env = {**os.environ, "LOOKALIKE_CACHE_DIR": str(cache_dir)}
    base = [str(query), "--dataset", str(dataset), "--top-k", "10"]
    with tempfile.TemporaryDirectory(prefix="scale-") as tmp:
        for label, extra in (("cold", []), ("warm", []), ("exact", ["--exact"])):
            r = run_search(base + extra, env, Path(tmp))
            record[label] = {k: v for k, v in r.items() if k != "result"}
            print(
                f"{label:5s}: {r['wall_s']:.1f} s, peak RSS {r['peak_rss_mb']:,.0f} MB (at exit: private "
                f"{r['rss_anon_mb_at_exit']:,.0f} MB, mapped file pages {r['rss_file_mb_at_exit']:,.0f} MB); "
                f"{r['stderr']}",
                flush=True,
            )
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
