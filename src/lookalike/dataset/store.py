"""Reading and writing the catalog and face rows on an open DuckDB connection.

Every function takes a connection and does one thing; callers decide how long connections live. Writes that
belong together (an object's row and its face rows) happen in one transaction, so a job killed at any moment
leaves either the old rows or the new ones, never half of each.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from lookalike.dataset.connection import transaction
from lookalike.dataset.schema import check_table_name, faces_ddl, faces_table_name
from lookalike.errors import InvalidArgument, TableNotFound
from lookalike.faces.types import ModelCard
from lookalike.records import ObjectResult
from lookalike.search.calibration import Calibration, card_calibration, uncalibrated
from lookalike.storage import ObjectInfo


@dataclass(frozen=True, slots=True)
class TableInfo:
    """A named face table (collection) of the dataset."""

    name: str
    model: str
    dim: int
    faces_table: str
    version: int
    #: The same-person decision in force: the stored calibration, or the card's fallback before the first one;
    #: see :mod:`lookalike.search.calibration`.
    calibration: Calibration
    calibrated_version: int | None = None

    @property
    def threshold(self) -> float:
        """Cosine distance at or below which two faces of this table are the same person."""
        return self.calibration.threshold


@dataclass(frozen=True, slots=True)
class StoredObject:
    uri: str
    source: str | None
    fingerprint: str | None
    status: str


class UriColumn:
    """The rows' URIs as one Arrow string array (memory-mapped from the matrix cache), not one Python string per
    row: ten million URIs as Python strings take over a gigabyte. ``column[row]`` is that row's ``str``."""

    __slots__ = ("_array", "_keep")

    def __init__(self, array: pa.Array | pa.ChunkedArray, keep: object = None) -> None:
        self._array = array
        self._keep = keep  # what the array's memory lives in (a memory-mapped file), kept open with it

    def __len__(self) -> int:
        return len(self._array)

    def __getitem__(self, row: int | np.integer) -> str:
        return str(self._array[int(row)].as_py())

    def __reduce__(self) -> tuple[type[UriColumn], tuple[pa.Array | pa.ChunkedArray]]:
        return UriColumn, (self._array,)  # pickled with its values, without the file

    def tolist(self) -> list[str]:
        return [str(u) for u in self._array.to_pylist()]

    def mask(self, uri: str) -> np.ndarray:
        """A boolean array: which rows have this URI."""
        import pyarrow.compute as pc

        return np.asarray(pc.equal(self._array, uri).to_numpy(zero_copy_only=False), bool)


@dataclass(frozen=True, slots=True)
class FaceMatrix:
    """All embedded faces of one table version, ready for search.

    ``matrix`` is a C-contiguous ``(n, dim)`` float32 array of L2-normalised rows (memory-mapped when it comes
    from the matrix cache); the other arrays are aligned with its rows.
    """

    table: str
    version: int
    face_id: np.ndarray  # (n,) int64
    matrix: np.ndarray  # (n, dim) float32
    uri: np.ndarray | UriColumn  # (n,) object (str), or the cache's Arrow column
    face_index: np.ndarray  # (n,) int32
    bbox: np.ndarray  # (n, 4) float32
    #: With ``LOOKALIKE_VECTORS=float16``: the float16 store (``lookalike.search.half``) that ``matrix`` views.
    half: object = None
    #: The same rows mapped a second time for scattered reads (a vector index's re-rank): a page fault there reads
    #: that page, not the neighbours a scan would want next. ``None`` when ``matrix`` is in memory.
    scattered: np.ndarray | None = None
    #: The same rows read one by one with ``pread`` (:class:`~lookalike.search.rowreader.RowReader`), for the
    #: few dozen rows a query that an index with refine codes re-ranks. ``None`` when ``matrix`` is in memory.
    reader: Any = None

    @property
    def rows_for_gather(self) -> np.ndarray:
        """The matrix to read scattered rows from."""
        return self.matrix if self.scattered is None else self.scattered

    @property
    def size(self) -> int:
        return int(self.matrix.shape[0])

    def has_uri(self, uri: str) -> bool:
        """Whether a row of the matrix is a face of the object ``uri``."""
        if isinstance(self.uri, UriColumn):
            return bool(self.uri.mask(uri).any())
        return bool(np.any(self.uri == uri))


# ---------------------------------------------------------------------------------------------- tables


def register_model(con: duckdb.DuckDBPyConnection, card: ModelCard) -> None:
    con.execute(
        "INSERT OR REPLACE INTO lookalike_models (name, dim, threshold, card) VALUES (?, ?, ?, ?)",
        [card.name, card.dim, card.threshold, json.dumps(asdict(card))],
    )


def _table_from_row(row: tuple) -> TableInfo:
    cal = Calibration.from_json(row[6])
    card = json.loads(row[7]) if row[7] else {}
    if cal is None and card.get("calibrated") is False:
        cal = uncalibrated(str(row[1]))
    elif cal is None:
        cal = card_calibration(float(row[5]), card.get("safe_threshold"), note="not calibrated yet")
    return TableInfo(
        name=row[0],
        model=row[1],
        dim=int(row[2]),
        faces_table=row[3],
        version=int(row[4]),
        calibration=cal,
        calibrated_version=None if row[8] is None else int(row[8]),
    )


_TABLE_SELECT = """SELECT t.name, t.model, t.dim, t.faces_table, t.version, m.threshold, t.calibration, m.card,
        t.calibrated_version
    FROM lookalike_tables t JOIN lookalike_models m ON m.name = t.model"""


def table_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [r[0] for r in con.execute("SELECT name FROM lookalike_tables ORDER BY name").fetchall()]


def find_table(con: duckdb.DuckDBPyConnection, name: str) -> TableInfo | None:
    rows = con.execute(_TABLE_SELECT + " WHERE t.name = ?", [name]).fetchall()
    return _table_from_row(rows[0]) if rows else None


def get_table(con: duckdb.DuckDBPyConnection, name: str) -> TableInfo:
    """The table ``name``; :class:`TableNotFound` with a did-you-mean hint when it does not exist."""
    info = find_table(con, name)
    if info is None:
        names = table_names(con)
        close = difflib.get_close_matches(name, names, n=1)
        if close:
            hint = f"did you mean {close[0]!r}?"
        elif names:
            hint = "tables in this dataset: " + ", ".join(names)
        else:
            hint = "the dataset has no tables yet: run lookalike index FOLDER"
        raise TableNotFound(f"no table {name!r} in this dataset", hint=hint)
    return info


def ensure_table(con: duckdb.DuckDBPyConnection, name: str, card: ModelCard) -> TableInfo:
    """Get table ``name``, creating it for model ``card`` if missing; refuse a model different from its own."""
    check_table_name(name)
    info = find_table(con, name)
    if info is not None:
        if info.model != card.name:
            raise InvalidArgument(
                f"table {name!r} holds {info.model!r} embeddings, not {card.name!r}",
                hint=f"index into another --table, or use --model {info.model}",
            )
        return info
    with transaction(con):
        register_model(con, card)
        con.execute(faces_ddl(name, card.dim))
        con.execute(
            "INSERT INTO lookalike_tables (name, model, dim, faces_table) VALUES (?, ?, ?, ?)",
            [name, card.name, card.dim, faces_table_name(name)],
        )
    return get_table(con, name)


def set_calibration(con: duckdb.DuckDBPyConnection, info: TableInfo, cal: Calibration) -> None:
    """Store ``cal`` as the calibration of ``info``'s table version (does not bump the version)."""
    con.execute(
        "UPDATE lookalike_tables SET calibration = ?, calibrated_version = ? WHERE name = ?",
        [cal.to_json(), info.version, info.name],
    )


def sample_embeddings(con: duckdb.DuckDBPyConnection, info: TableInfo, n: int) -> np.ndarray:
    """A repeatable sample of at most ``n`` face embeddings of ``info`` as a ``(k, dim)`` float32 array."""
    tbl = con.sql(
        f"""SELECT embedding FROM "{info.faces_table}" WHERE embedding IS NOT NULL
            USING SAMPLE reservoir({int(n)} ROWS) REPEATABLE (0)"""
    ).to_arrow_table()
    return fixed_to_numpy(tbl.column("embedding"), info.dim)


def drop_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    info = get_table(con, name)
    with transaction(con):
        con.execute(f'DROP TABLE IF EXISTS "{info.faces_table}"')
        con.execute("DELETE FROM lookalike_objects WHERE tbl = ?", [name])
        con.execute("DELETE FROM lookalike_tables WHERE name = ?", [name])
        for people_table in (
            "lookalike_person_faces",
            "lookalike_person_cannot_link",
            "lookalike_persons",
            "lookalike_people_forgotten",
            "lookalike_people_log",
        ):
            con.execute(f"DELETE FROM {people_table} WHERE tbl = ?", [name])


def table_stats(con: duckdb.DuckDBPyConnection) -> list[dict[str, object]]:
    """One dict per table: name, model, dim, version, objects, faces, no_face, errors."""
    out: list[dict[str, object]] = []
    for name in table_names(con):
        info = get_table(con, name)
        counts = con.execute(
            """SELECT count(*), count(*) FILTER (WHERE status = 'no_face'),
                      count(*) FILTER (WHERE status = 'error'), coalesce(sum(n_faces), 0)
               FROM lookalike_objects WHERE tbl = ?""",
            [name],
        ).fetchall()[0]
        out.append(
            {
                "name": name,
                "model": info.model,
                "dim": info.dim,
                "version": info.version,
                "calibration": info.calibration.to_dict(),
                "calibrated_version": info.calibrated_version,
                "objects": int(counts[0]),
                "faces": int(counts[3]),
                "no_face": int(counts[1]),
                "errors": int(counts[2]),
            }
        )
    return out


# ---------------------------------------------------------------------------------------------- objects


def stored_objects(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, StoredObject]:
    rows = con.execute(
        "SELECT uri, source, fingerprint, status FROM lookalike_objects WHERE tbl = ?", [table]
    ).fetchall()
    return {r[0]: StoredObject(r[0], r[1], r[2], r[3]) for r in rows}


def _bump_version(con: duckdb.DuckDBPyConnection, table: str) -> None:
    con.execute(
        "UPDATE lookalike_tables SET version = version + 1, updated_at = current_timestamp WHERE name = ?",
        [table],
    )


def _delete_uris(con: duckdb.DuckDBPyConnection, info: TableInfo, uris: Sequence[str]) -> None:
    uri_list = list(uris)
    con.execute(f'DELETE FROM "{info.faces_table}" WHERE list_contains(?, uri)', [uri_list])
    con.execute("DELETE FROM lookalike_objects WHERE tbl = ? AND list_contains(?, uri)", [info.name, uri_list])


def remove_objects(con: duckdb.DuckDBPyConnection, info: TableInfo, uris: Sequence[str]) -> int:
    """Delete the object and face rows of ``uris``; return how many objects were removed."""
    if not uris:
        return 0
    with transaction(con):
        _delete_uris(con, info, uris)
        _bump_version(con, info.name)
    return len(uris)


def _faces_arrow(results: Iterable[ObjectResult], dim: int) -> pa.Table:
    """Arrow table of face rows for ``results``: one row per face, one status row per object without faces."""
    uris: list[str] = []
    face_index: list[int | None] = []
    bboxes: list[np.ndarray] = []
    landmarks: list[np.ndarray] = []
    scores: list[float | None] = []
    statuses: list[str] = []
    has_emb: list[bool] = []
    embeddings: list[np.ndarray] = []
    nan4 = np.full(4, np.nan, np.float32)
    nan10 = np.full(10, np.nan, np.float32)
    for res in results:
        if res.status == "ok" and res.embeddings is not None and res.faces:
            numbers = res.face_numbers or list(range(len(res.faces)))
            for i, face in zip(numbers, res.faces, strict=True):
                uris.append(res.info.uri)
                face_index.append(i)
                bboxes.append(np.asarray(face.bbox, np.float32))
                landmarks.append(np.asarray(face.landmarks, np.float32).reshape(10))
                scores.append(float(face.score))
                statuses.append("")
                has_emb.append(True)
            embeddings.append(np.asarray(res.embeddings, np.float32).reshape(-1, dim))
        else:
            uris.append(res.info.uri)
            face_index.append(None)
            bboxes.append(nan4)
            landmarks.append(nan10)
            scores.append(None)
            statuses.append(res.row_status)
            has_emb.append(False)
    n = len(uris)
    emb = np.concatenate(embeddings) if embeddings else np.zeros((0, dim), np.float32)
    full = np.zeros((n, dim), np.float32)
    mask = np.asarray(has_emb, bool)
    full[mask] = emb
    face_mask = ~mask  # nulls for status rows

    def fixed(values: np.ndarray, width: int) -> pa.Array:
        flat = pa.array(values.reshape(-1), type=pa.float32())
        return pa.FixedSizeListArray.from_arrays(flat, width, mask=pa.array(face_mask))

    return pa.table(
        {
            "uri": pa.array(uris, pa.string()),
            "face_index": pa.array(face_index, pa.int32()),
            "bbox": fixed(np.stack(bboxes) if n else np.zeros((0, 4), np.float32), 4),
            "landmarks": fixed(np.stack(landmarks) if n else np.zeros((0, 10), np.float32), 10),
            "det_score": pa.array(scores, pa.float32()),
            "embedding": fixed(full, dim),
            "status": pa.array(statuses, pa.string()),
        }
    )


def object_columns(table: str, infos: Sequence[ObjectInfo]) -> dict[str, pa.Array]:
    """``tbl`` plus the SIMPLE metadata and fingerprint of ``infos`` as Arrow columns (named as in the catalog)."""
    return {
        "tbl": pa.array([table] * len(infos), pa.string()),
        "uri": pa.array([i.uri for i in infos], pa.string()),
        "size": pa.array([i.size for i in infos], pa.int64()),
        "content_type": pa.array([i.content_type for i in infos], pa.string()),
        "updated": pa.array([i.updated for i in infos], pa.timestamp("us", tz="UTC")),
        "etag": pa.array([i.etag for i in infos], pa.string()),
        "md5": pa.array([i.md5 for i in infos], pa.string()),
        "generation": pa.array([i.generation for i in infos], pa.string()),
        "fingerprint": pa.array([i.fingerprint for i in infos], pa.string()),
    }


def insert_arrow(con: duckdb.DuckDBPyConnection, target: str, rows: pa.Table) -> None:
    """``INSERT INTO target (columns of rows) SELECT ...`` from an Arrow table, by column name."""
    names = ", ".join(f'"{c}"' for c in rows.column_names)
    con.register("_lookalike_insert", rows)
    try:
        con.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM _lookalike_insert")
    finally:
        con.unregister("_lookalike_insert")


def _objects_arrow(table: str, results: Sequence[ObjectResult]) -> pa.Table:
    columns = object_columns(table, [r.info for r in results])
    columns["source"] = pa.array([r.source for r in results], pa.string())
    columns["status"] = pa.array([r.status for r in results], pa.string())
    columns["error"] = pa.array([r.error for r in results], pa.string())
    columns["n_faces"] = pa.array([len(r.faces) if r.status == "ok" else 0 for r in results], pa.int32())
    return pa.table(columns)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over union of box ``a`` (4,) with each of boxes ``b`` (m, 4), as x1, y1, x2, y2."""
    x1 = np.maximum(a[0], b[:, 0])
    y1 = np.maximum(a[1], b[:, 1])
    x2 = np.minimum(a[2], b[:, 2])
    y2 = np.minimum(a[3], b[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(area > 0, inter / np.maximum(area, 1e-9), 0.0)


#: A new face overlapping a forgotten face's box this much (in the same photo, or a copy of it) is not kept.
FORGOTTEN_IOU = 0.5


def drop_forgotten(con: duckdb.DuckDBPyConnection, info: TableInfo, results: Sequence[ObjectResult]) -> None:
    """Leave out of ``results`` the faces a user forgot (``lookalike people forget``): same photo (by URI or by
    content fingerprint) and the same place in it. Changes ``results`` in place."""
    uris = [r.info.uri for r in results if r.status == "ok" and r.faces]
    if not uris:
        return
    prints = [r.info.fingerprint for r in results if r.status == "ok" and r.faces and r.info.fingerprint]
    rows = con.execute(
        """SELECT uri, fingerprint, bbox FROM lookalike_people_forgotten
           WHERE tbl = ? AND (list_contains(?, uri) OR list_contains(?, fingerprint))""",
        [info.name, uris, prints],
    ).fetchall()
    if not rows:
        return
    by_key: dict[str, list[list[float]]] = {}
    for uri, fingerprint, bbox in rows:
        for key in (uri, fingerprint):
            if key:
                by_key.setdefault(key, []).append(list(bbox))
    for res in results:
        if res.status != "ok" or not res.faces or res.embeddings is None:
            continue
        boxes = by_key.get(res.info.uri, []) + (by_key.get(res.info.fingerprint, []) if res.info.fingerprint else [])
        if not boxes:
            continue
        gone = np.asarray(boxes, np.float32)
        keep = [i for i, f in enumerate(res.faces) if _iou(np.asarray(f.bbox, np.float32), gone).max() < FORGOTTEN_IOU]
        if len(keep) == len(res.faces):
            continue
        res.forgotten = len(res.faces) - len(keep)
        res.face_numbers = keep
        res.faces = [res.faces[i] for i in keep]
        res.embeddings = np.asarray(res.embeddings)[keep]


def write_results(con: duckdb.DuckDBPyConnection, info: TableInfo, results: Sequence[ObjectResult]) -> None:
    """Replace the rows of these objects with their new results (less any forgotten faces), in one transaction."""
    if not results:
        return
    drop_forgotten(con, info, results)
    faces = _faces_arrow(results, info.dim)
    objects = _objects_arrow(info.name, results)
    with transaction(con):
        _delete_uris(con, info, [r.info.uri for r in results])
        insert_arrow(con, f'"{info.faces_table}"', faces)
        insert_arrow(con, "lookalike_objects", objects)
        _bump_version(con, info.name)


# ---------------------------------------------------------------------------------------------- reading faces


def fixed_to_numpy(col: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """A fixed-size-list column as a C-contiguous ``(n, width)`` float32 array, copied once."""
    chunks = col.chunks if isinstance(col, pa.ChunkedArray) else [col]
    out = np.empty((sum(len(c) for c in chunks), width), np.float32)
    pos = 0
    for chunk in chunks:
        flat = chunk.flatten().to_numpy(zero_copy_only=False)  # flatten() honours the chunk's offset
        out[pos : pos + len(chunk)] = flat.reshape(-1, width)
        pos += len(chunk)
    return out


def load_matrix(con: duckdb.DuckDBPyConnection, info: TableInfo) -> FaceMatrix:
    """Read every embedded face of ``info`` into one contiguous matrix (rows in storage order)."""
    tbl = con.sql(
        f"""SELECT face_id, uri, face_index, bbox, embedding FROM "{info.faces_table}"
            WHERE embedding IS NOT NULL"""
    ).to_arrow_table()
    return FaceMatrix(
        table=info.name,
        version=info.version,
        face_id=tbl.column("face_id").to_numpy().astype(np.int64),
        matrix=fixed_to_numpy(tbl.column("embedding"), info.dim),
        uri=np.asarray(tbl.column("uri").to_pylist(), dtype=object),
        face_index=tbl.column("face_index").to_numpy().astype(np.int32),
        bbox=fixed_to_numpy(tbl.column("bbox"), 4),
    )


def face_ids(con: duckdb.DuckDBPyConnection, info: TableInfo) -> np.ndarray:
    """The ids of every embedded face of ``info``."""
    tbl = con.sql(f'SELECT face_id FROM "{info.faces_table}" WHERE embedding IS NOT NULL').to_arrow_table()
    return tbl.column("face_id").to_numpy().astype(np.int64)


def face_rows(
    con: duckdb.DuckDBPyConnection,
    info: TableInfo,
    *,
    face_ids: Sequence[int] | None = None,
    uri: str | None = None,
) -> list[dict[str, object]]:
    """Face rows (with embeddings as numpy arrays) selected by id or by object URI."""
    where: list[str] = []
    params: list[object] = []
    if face_ids is not None:
        where.append("list_contains(?, face_id)")
        params.append(list(map(int, face_ids)))
    if uri is not None:
        where.append("uri = ?")
        params.append(uri)
    sql = f'SELECT face_id, uri, face_index, bbox, det_score, embedding, status FROM "{info.faces_table}"'
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY face_id"
    rows = con.execute(sql, params).fetchall()
    keys = ("face_id", "uri", "face_index", "bbox", "det_score", "embedding", "status")
    out = []
    for row in rows:
        d = dict(zip(keys, row, strict=True))
        if d["embedding"] is not None:
            d["embedding"] = np.asarray(d["embedding"], np.float32)
        out.append(d)
    return out
