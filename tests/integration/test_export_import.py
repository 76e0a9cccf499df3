"""``export`` / ``import`` of a face table as Parquet shards plus a manifest, on real DuckDB files, real Parquet
and a real S3 server (SeaweedFS): the round trip is bit-identical, a later index embeds nothing, and every
damaged or mismatched export is refused before anything is written."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from PIL import Image

import lookalike
from lookalike.dataset import store, writer
from lookalike.errors import DatasetError, InvalidArgument, LookalikeError, ObjectNotFound
from lookalike.faces.registry import get_card

if TYPE_CHECKING:
    from conftest import S3Server

DATA = Path(__file__).resolve().parents[1] / "data"
QUERIES = sorted(str(p) for p in (DATA / "queries").glob("*.jpg"))
FACE_COLUMNS = "uri, face_index, bbox, landmarks, det_score, embedding, status"
#: The bundled gallery has one face in each of its 36 photos; the corrupt file and the blank image add a status row.
ROWS, FACES, PHOTOS = 38, 36, 38
OBJECT_COLUMNS = (
    "uri, source, size, content_type, updated, etag, md5, generation, fingerprint, status, error, n_faces, indexed_at"
)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lookalike.cli", *args], capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The gallery (12 people x 3) plus a corrupt file and a face-less image, indexed: (photos, dataset)."""
    root = tmp_path_factory.mktemp("export-source")
    photos = root / "photos"
    shutil.copytree(DATA / "gallery", photos)
    bad = photos / "bad"
    bad.mkdir()
    good = (photos / "Tony_Blair" / "Tony_Blair_0002.jpg").read_bytes()
    (bad / "truncated.jpg").write_bytes(good[: len(good) // 3])
    Image.fromarray(np.full((160, 160, 3), 128, np.uint8)).save(bad / "blank.png")
    dataset = root / "source.duckdb"
    report = lookalike.open(dataset).index(str(photos))
    assert (report.added, report.failed, report.no_face, report.faces) == (PHOTOS, 1, 1, FACES)
    return photos, dataset


@pytest.fixture(scope="module")
def exported(source: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``source`` exported in shards of 10 rows (so that rows cross shard boundaries)."""
    out = tmp_path_factory.mktemp("export") / "faces-export"
    report = lookalike.open(source[1]).export_table("faces", str(out), shard_rows=10)
    assert len(report.shards) > 2
    return out


def _copy(exported: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(exported, dst)
    return dst


def _faces(path: Path, table: str = "faces") -> pa.Table:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.sql(f'SELECT {FACE_COLUMNS} FROM "faces_{table}" ORDER BY face_id').to_arrow_table()


def _objects(path: Path, table: str = "faces") -> list[tuple[Any, ...]]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(
            f"SELECT {OBJECT_COLUMNS} FROM lookalike_objects WHERE tbl = ? ORDER BY uri", [table]
        ).fetchall()


def _hits(ds: lookalike.Dataset) -> list[tuple[Any, ...]]:
    result = ds.search(QUERIES, top_k=8, exact=True)
    return [(h.query_uri, h.query_face, h.rank, h.uri, h.face, h.bbox, h.distance, h.same_person) for h in result.hits]


def _no_table_written(path: Path) -> None:
    """Nothing of a failed import is in the dataset: no table, no rows."""
    assert lookalike.open(path).tables() == []


# ---------------------------------------------------------------------------------------------- round trip


def test_round_trip_is_bit_identical(source: tuple[Path, Path], exported: Path, tmp_path: Path) -> None:
    _, src_path = source
    target = tmp_path / "imported.duckdb"
    report = lookalike.open(target).import_table(str(exported))
    assert (report.table, report.model, report.dim, report.created) == ("faces", "fr-feature", 512, True)
    assert (report.objects, report.replaced, report.forgotten, report.version) == (PHOTOS, 0, 0, 1)

    before, after = _faces(src_path), _faces(target)
    assert after.num_rows == before.num_rows == report.rows
    assert after.equals(before)  # every column, every row, in the same order
    emb_before = np.asarray(before.column("embedding").combine_chunks().flatten(), np.float32)
    emb_after = np.asarray(after.column("embedding").combine_chunks().flatten(), np.float32)
    assert emb_after.tobytes() == emb_before.tobytes()
    assert after.column("embedding").null_count == 2  # the corrupt file and the face-less image
    assert _objects(target) == _objects(src_path)

    src_ds, dst_ds = lookalike.open(src_path), lookalike.open(target)
    assert dst_ds.table().calibration == src_ds.table().calibration
    assert _hits(dst_ds) == _hits(src_ds)  # same uris, same faces, same distances to the last bit


def test_manifest_and_parquet_layout(source: tuple[Path, Path], exported: Path) -> None:
    manifest = json.loads((exported / "manifest.json").read_text())
    info = lookalike.open(source[1]).table()
    assert manifest["format"] == "lookalike-faces-export" and manifest["format_version"] == 1
    assert manifest["model"]["name"] == "fr-feature" and manifest["model"]["card"]["dim"] == manifest["dim"] == 512
    assert manifest["table"] == "faces" and manifest["table_version"] == info.version
    assert manifest["calibration"] == info.calibration.to_dict()
    assert (manifest["rows"], manifest["faces"], manifest["objects"]) == (ROWS, FACES, PHOTOS)
    assert [c["name"] for c in manifest["columns"]][:7] == FACE_COLUMNS.split(", ")
    assert {c["name"]: c["type"] for c in manifest["columns"]}["embedding"] == "FLOAT[512]"
    files = sorted(p.name for p in exported.glob("*.parquet"))
    assert files == [s["file"] for s in manifest["shards"]] and sum(s["rows"] for s in manifest["shards"]) == ROWS

    schema = pq.read_schema(exported / files[0])
    assert schema.field("embedding").type == pa.list_(pa.field("element", pa.float32(), nullable=False), 512)
    assert schema.field("updated").type == pa.timestamp("us", tz="UTC")
    parquet_schema = str(pq.ParquetFile(exported / files[0]).schema)
    assert "optional group field_id=-1 embedding (List)" in parquet_schema
    assert "required float field_id=-1 element" in parquet_schema

    # the folder loads as it is: DuckDB reads every shard through one glob, lists cast back to arrays
    with duckdb.connect() as con:
        rows = con.execute(f"SELECT count(*), count(embedding) FROM '{exported}/*.parquet'").fetchall()[0]
        kinds = dict(con.execute(f"SELECT column_name, column_type FROM (DESCRIBE '{exported}/*.parquet')").fetchall())
        width = con.execute(
            f"SELECT DISTINCT len(embedding::FLOAT[512]) FROM '{exported}/*.parquet' WHERE embedding IS NOT NULL"
        ).fetchall()
    assert rows == (ROWS, FACES) and kinds["embedding"] == "FLOAT[]" and kinds["updated"] == "TIMESTAMP WITH TIME ZONE"
    assert width == [(512,)]


def test_cli_round_trip_then_index_embeds_nothing(source: tuple[Path, Path], tmp_path: Path) -> None:
    photos, src_path = source
    out = tmp_path / "cli-export"
    exported = cli("export", "faces", "--to", f"file://{out}", "--dataset", str(src_path), "--json")
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["rows"] == ROWS
    again = cli("export", "faces", "--to", str(out), "--dataset", str(src_path))
    assert again.returncode == 1 and "already holds an export" in again.stderr and str(out) in again.stderr

    target = tmp_path / "cli.duckdb"
    imported = cli("import", str(out), "--table", "faces", "--dataset", str(target))
    assert imported.returncode == 0, imported.stderr
    assert "imported" in imported.stdout and "'faces'" in imported.stdout
    assert lookalike.open(target).people.list(), "the imported faces are grouped into persons, as index does"
    plain = cli("import", str(out), "--dataset", str(tmp_path / "plain.duckdb"), "--no-cluster", "--json")
    assert plain.returncode == 0, plain.stderr
    assert json.loads(plain.stdout)["people"] is None and lookalike.open(tmp_path / "plain.duckdb").people.list() == []

    # index the same folder: nothing new is embedded; only the corrupt file is retried, as the source would do
    copy = tmp_path / "source-copy.duckdb"
    shutil.copy(src_path, copy)
    expected = lookalike.open(copy).index(str(photos))
    run = cli("index", str(photos), "--dataset", str(target), "--json")
    report = json.loads(run.stdout)
    assert (report["added"], report["removed"], report["faces"]) == (0, 0, 0)
    assert (report["unchanged"], report["updated"], report["failed"]) == (37, 1, 1)
    assert (report["unchanged"], report["updated"]) == (expected.unchanged, expected.updated)


def test_import_replaces_the_rows_of_the_same_photos(source: tuple[Path, Path], exported: Path, tmp_path: Path) -> None:
    target = tmp_path / "twice.duckdb"
    ds = lookalike.open(target)
    other = ds.index(QUERIES[0])  # a photo that is not in the export stays
    assert other.faces == 1
    first = ds.import_table(str(exported))
    second = ds.import_table(str(exported) + "/manifest.json")  # the manifest's own URI works too
    assert (first.created, first.replaced, second.created, second.replaced) == (False, 0, False, PHOTOS)
    assert second.version == first.version + 1
    faces = _faces(target)
    assert faces.num_rows == ROWS + 1 and len(_objects(target)) == PHOTOS + 1
    assert faces.filter(pc.not_equal(faces.column("uri"), QUERIES[0])).equals(_faces(source[1]))


def test_import_leaves_out_faces_forgotten_in_the_dataset(exported: Path, tmp_path: Path) -> None:
    target = tmp_path / "forgot.duckdb"
    ds = lookalike.open(target)
    ds.import_table(str(exported))
    with duckdb.connect(str(target)) as con:
        uri, bbox = con.execute("SELECT uri, bbox FROM faces_faces WHERE embedding IS NOT NULL LIMIT 1").fetchone()  # type: ignore[misc]
        n_faces = con.execute("SELECT count(*) FROM faces_faces WHERE uri = ?", [uri]).fetchone()[0]  # type: ignore[index]
        con.execute(
            "INSERT INTO lookalike_people_forgotten (tbl, uri, face_index, bbox) VALUES ('faces', ?, 0, ?)", [uri, bbox]
        )
    report = ds.import_table(str(exported))
    assert report.forgotten == 1 and report.faces == FACES - 1
    with duckdb.connect(str(target), read_only=True) as con:
        rows = con.execute("SELECT status FROM faces_faces WHERE uri = ? ORDER BY status", [uri]).fetchall()
        kept = con.execute("SELECT n_faces FROM lookalike_objects WHERE uri = ?", [uri]).fetchone()[0]  # type: ignore[index]
    assert kept == n_faces - 1
    assert rows == ([("forgotten",)] if n_faces == 1 else [("",)] * (n_faces - 1))


# ---------------------------------------------------------------------------------------------- refusals


def test_model_mismatch_is_refused(exported: Path, tmp_path: Path) -> None:
    target = tmp_path / "other-model.duckdb"
    with writer(target) as con:
        store.ensure_table(con, "faces", get_card("mobilefacenet"))
    with pytest.raises(InvalidArgument) as err:
        lookalike.open(target).import_table(str(exported))
    assert err.value.code == "model_mismatch"
    assert str(exported) in err.value.message and "mobilefacenet" in err.value.message
    tables = lookalike.open(target).tables()
    assert [(t["name"], t["model"], t["version"], t["objects"]) for t in tables] == [("faces", "mobilefacenet", 0, 0)]


def _rewrite_shard(folder: Path, change: Any) -> None:
    """Rewrite the first shard through ``change(table) -> table`` and fix its entry in the manifest."""
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    entry = manifest["shards"][0]
    path = folder / entry["file"]
    pq.write_table(change(pq.read_table(path)), path)
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    entry["bytes"] = path.stat().st_size
    manifest_path.write_text(json.dumps(manifest))


def _short_embeddings(table: pa.Table) -> pa.Table:
    emb = table.column("embedding").combine_chunks()
    values = np.asarray(emb.flatten(), np.float32).reshape(-1, 512)[:, :128].reshape(-1)
    short = pa.FixedSizeListArray.from_arrays(pa.array(values), 128, mask=emb.is_null())
    return table.set_column(table.schema.get_field_index("embedding"), "embedding", short)


def _plain_list_embeddings(table: pa.Table) -> pa.Table:
    """Embeddings as a variable list with a wrong width (as another tool might write them)."""
    rows = [None if v is None else v[:100] for v in table.column("embedding").to_pylist()]
    return table.set_column(
        table.schema.get_field_index("embedding"), "embedding", pa.array(rows, pa.list_(pa.float32()))
    )


@pytest.mark.parametrize("how", ["manifest", "column", "plain-list"])
def test_dimension_mismatch_is_refused(exported: Path, tmp_path: Path, how: str) -> None:
    folder = _copy(exported, tmp_path)
    if how == "manifest":
        manifest = json.loads((folder / "manifest.json").read_text())
        manifest["dim"] = manifest["model"]["dim"] = 128
        (folder / "manifest.json").write_text(json.dumps(manifest))
    else:
        _rewrite_shard(folder, _short_embeddings if how == "column" else _plain_list_embeddings)
    target = tmp_path / "dim.duckdb"
    with pytest.raises(InvalidArgument) as err:
        lookalike.open(target).import_table(str(folder))
    assert err.value.code == "dimension_mismatch"
    assert str(folder) in err.value.message
    _no_table_written(target)


def test_altered_shard_is_refused(exported: Path, tmp_path: Path) -> None:
    folder = _copy(exported, tmp_path)
    shard = sorted(folder.glob("*.parquet"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    target = tmp_path / "altered.duckdb"
    with pytest.raises(DatasetError) as err:
        lookalike.open(target).import_table(str(folder))
    assert err.value.code == "checksum_mismatch" and str(shard) in err.value.message
    _no_table_written(target)


def test_missing_shard_or_manifest_is_refused(exported: Path, tmp_path: Path) -> None:
    folder = _copy(exported, tmp_path)
    shard = sorted(folder.glob("*.parquet"))[-1]
    shard.unlink()
    target = tmp_path / "missing.duckdb"
    with pytest.raises(ObjectNotFound) as err:
        lookalike.open(target).import_table(str(folder))
    assert str(shard) in err.value.message
    (folder / "manifest.json").unlink()
    with pytest.raises(ObjectNotFound) as err:
        lookalike.open(target).import_table(str(folder))
    assert "no manifest.json in " + str(folder) in err.value.message
    _no_table_written(target)
    # the command line says the same in one line, exit code 1
    run = cli("import", str(folder), "--dataset", str(target))
    assert run.returncode == 1 and run.stderr.startswith("error: no manifest.json in " + str(folder))


def test_export_errors_name_the_table_or_folder(source: tuple[Path, Path], tmp_path: Path) -> None:
    ds = lookalike.open(source[1])
    with pytest.raises(LookalikeError, match="no table 'facez'"):
        ds.export_table("facez", str(tmp_path / "x"))
    with pytest.raises(InvalidArgument, match="wildcard"):
        ds.export_table("faces", str(tmp_path / "x*"))
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(InvalidArgument, match="not a folder"):
        ds.export_table("faces", str(tmp_path / "a-file"))


# ---------------------------------------------------------------------------------------------- S3


@pytest.mark.s3
def test_export_to_s3_and_import_back(s3_server: S3Server, source: tuple[Path, Path], tmp_path: Path) -> None:
    fs = s3_server.bucket("lookalike-exports")
    to = "s3://lookalike-exports/runs/faces"
    src = lookalike.open(source[1], storage_options=s3_server.options())
    report = src.export_table("faces", to, shard_rows=16)
    assert [s.file for s in report.shards] == ["faces-00000.parquet", "faces-00001.parquet", "faces-00002.parquet"]
    assert [s.rows for s in report.shards] == [16, 16, ROWS - 32]
    keys = sorted(fs.ls("lookalike-exports/runs/faces"))
    assert keys == [f"lookalike-exports/runs/faces/{n}" for n in [*(s.file for s in report.shards), "manifest.json"]]
    with pytest.raises(InvalidArgument, match="already holds an export"):
        src.export_table("faces", to + "/")

    target = tmp_path / "from-s3.duckdb"
    imported = lookalike.open(target, storage_options=s3_server.options()).import_table(to, "restored")
    assert (imported.table, imported.rows, imported.objects) == ("restored", ROWS, PHOTOS)
    assert _faces(target, "restored").equals(_faces(source[1]))

    fs.rm_file("lookalike-exports/runs/faces/faces-00001.parquet")
    with pytest.raises(ObjectNotFound, match=f"shard {to}/faces-00001.parquet"):
        lookalike.open(tmp_path / "none.duckdb", storage_options=s3_server.options()).import_table(to)
