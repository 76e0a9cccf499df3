"""The Python API: a :class:`Dataset` to index photos into, search and verify faces with.

Example::

    import lookalike

    ds = lookalike.open("photos.duckdb")
    ds.index("~/Pictures")                       # incremental: only new or changed photos are embedded
    for hit in ds.search("query.jpg", top_k=5):   # every face in query.jpg
        print(hit.rank, hit.uri, hit.distance, hit.same_person)
    print(ds.verify("a.jpg", "b.jpg").same_person)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from lookalike import config
from lookalike.dataset import parquet as transfer
from lookalike.dataset import reader, store, writer
from lookalike.embedding import detect_and_embed
from lookalike.errors import InvalidArgument, LookalikeError, NoFaceError, ObjectNotFound, SearchError
from lookalike.faces.registry import get_card, get_model
from lookalike.faces.types import DetectedFace
from lookalike.images import DEFAULT_MAX_PIXELS, decode_image
from lookalike.ingest import (
    DEFAULT_CHUNK,
    IndexReport,
    JobOptions,
    normalise_source,
    recalibrate,
    refresh_vector_indexes,
    run_index,
)
from lookalike.people import People
from lookalike.people.decide import (
    CONFIRM_FACES,
    PersonSums,
    Verdicts,
    person_rows_for,
    person_verdicts,
    query_persons,
)
from lookalike.records import QueryFace
from lookalike.search import cache
from lookalike.search.calibration import (
    Calibration,
    card_calibration,
    decide,
    decide_array,
    grouping_thresholds,
    reason,
    uncalibrated,
    user_calibration,
)
from lookalike.search.diskcache import load_cached_matrix
from lookalike.search.distances import Distance, parse_distance
from lookalike.search.vindex import faces as face_indexes
from lookalike.search.vindex.searcher import IndexUsage
from lookalike.search.vindex.spec import SearchKnobs, parse_index_options
from lookalike.storage import StorageOptions, has_glob, list_objects, read_object

if TYPE_CHECKING:
    from lookalike.sql.result import SqlResult

#: A query: a path or URI of an image, ``face:ID`` for an indexed face, raw image bytes, or embedding(s).
Query = str | bytes | np.ndarray

_FACE_PREFIX = "face:"

#: ``verify`` with a table looks for the persons a face would join among its this many nearest faces.
PERSON_CANDIDATES = 16


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One result row: a query face, and one of its nearest indexed faces."""

    query_uri: str
    query_face: int
    rank: int
    uri: str
    face: int
    face_id: int
    bbox: tuple[float, float, float, float]
    distance: float
    #: True (same person), False (different people) or None (uncertain: see ``same_person_reason``).
    same_person: bool | None
    query_bbox: tuple[float, float, float, float] | None = None
    same_person_reason: str | None = None
    #: The person the face is in (``lookalike people``), or None when it is in none.
    person_id: int | None = None
    person_name: str | None = None
    #: What decided ``same_person``: ``"person"`` (the query and this face are both in persons of the table,
    #: :mod:`lookalike.people.decide`) or ``"distance"`` (the calibration, or a user's threshold).
    same_person_basis: str = "distance"

    def to_dict(self) -> dict[str, object]:
        return {
            "query_uri": self.query_uri,
            "query_face": self.query_face,
            "query_bbox": _bbox_list(self.query_bbox),
            "rank": self.rank,
            "uri": self.uri,
            "face": self.face,
            "face_id": self.face_id,
            "bbox": _bbox_list(self.bbox),
            "distance": round(self.distance, 6),
            "same_person": self.same_person,
            "same_person_reason": self.same_person_reason,
            "same_person_basis": self.same_person_basis,
            "person_id": self.person_id,
            "person_name": self.person_name,
        }


@dataclass(frozen=True, slots=True)
class SearchResult:
    """Rows of a search, plus the queries that could not be used (when ``skip_errors`` was set), and the
    same-person calibration the rows were decided with."""

    hits: list[SearchHit]
    queries: list[QueryFace]
    errors: list[tuple[str, str]] = field(default_factory=list)
    calibration: Calibration | None = None
    #: How the search used the table's vector index (``mode`` FULLY_USED, PARTIALLY_USED or UNUSED, and why).
    index_usage: IndexUsage | None = None


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Are the main faces of two images the same person?"""

    a: QueryFace
    b: QueryFace
    model: str
    distance: float
    threshold: float
    same_person: bool | None
    calibration: Calibration | None = None
    #: ``"person"`` when both faces are in (or would join) persons of the table and those decided, else
    #: ``"distance"`` (see :mod:`lookalike.people.decide`).
    same_person_basis: str = "distance"
    #: The persons of the table the two faces are in or would join (None: none, or no table).
    persons: tuple[int | None, int | None] = (None, None)
    #: Why ``same_person`` is None when the persons made it so (else the calibration's reason applies).
    person_reason: str | None = None

    def to_dict(self) -> dict[str, object]:
        why = self.person_reason or (reason(self.calibration) if self.calibration is not None else None)
        return {
            "a": {"uri": self.a.uri, "face": self.a.face_index, "bbox": _bbox_list(self.a.bbox)},
            "b": {"uri": self.b.uri, "face": self.b.face_index, "bbox": _bbox_list(self.b.bbox)},
            "model": self.model,
            "distance": round(self.distance, 6),
            "threshold": self.threshold,
            "same_person": self.same_person,
            "same_person_reason": why if self.same_person is None else None,
            "same_person_basis": self.same_person_basis,
            "persons": list(self.persons),
            "calibration": self.calibration.to_dict() if self.calibration is not None else None,
        }


def _query_faces(uri: str, faces: Sequence[DetectedFace], emb: np.ndarray) -> list[QueryFace]:
    return [QueryFace(uri=uri, face_index=i, bbox=f.bbox, embedding=emb[i], score=f.score) for i, f in enumerate(faces)]


def _bbox_list(bbox: tuple[float, ...] | None) -> list[float] | None:
    return [round(v, 1) for v in bbox] if bbox is not None else None


class Dataset:
    """A Lookalike dataset: a DuckDB file with named face tables.

    Connections are opened per operation and closed straight away, so other processes can use the same file
    in between (DuckDB allows one writing process at a time).
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        storage_options: StorageOptions | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.path = os.fspath(path if path is not None else config.default_dataset())
        self.storage_options = storage_options
        self.max_pixels = max_pixels

    def __repr__(self) -> str:
        return f"Dataset({self.path!r})"

    @property
    def people(self) -> People:
        """The persons of this dataset's face tables: group, name, merge, move, hide, forget
        (see :mod:`lookalike.people`)."""
        return People(self.path)

    def _persons_for(self, info: store.TableInfo, face_ids: list[int]) -> dict[int, tuple[int, str | None]]:
        """``face_id -> (person_id, name)`` (a hook, like :meth:`_matrix`)."""
        return self.people.of_faces(face_ids, info.name)

    def _query_persons(
        self,
        info: store.TableInfo,
        matrix: store.FaceMatrix,
        qmat: np.ndarray,
        idx: np.ndarray,
        owners: dict[int, tuple[int, str | None]],
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
        """``(query_person (q,), row_person (q, k), cosine (q, k))`` for the queries ``qmat`` and their result rows
        ``idx`` (-1: no person); ``None`` when no row is in a person or the table's model can't group."""
        pair = grouping_thresholds(info.calibration)
        if not owners or pair is None:
            return None
        face_threshold, group_threshold = pair
        safe = np.clip(idx, 0, None)
        row_person = np.array(
            [[owners.get(int(f), (-1, None))[0] for f in r] for r in matrix.face_id[safe]], np.int64
        ).reshape(idx.shape)
        row_person[idx < 0] = -1
        cosine = 1.0 - np.einsum("qd,qkd->qk", qmat, matrix.matrix[safe], dtype=np.float64)
        qperson = query_persons(
            qmat,
            cosine[:, 0],
            row_person,
            lambda ids: self._person_sums(info, matrix, ids),
            group_threshold,
            face_threshold,
        )
        return qperson, row_person, cosine

    def _person_sums(self, info: store.TableInfo, matrix: store.FaceMatrix, ids: np.ndarray) -> PersonSums:
        """Vector sums and face counts of the persons ``ids``, from the table's matrix."""
        face_ids, person_ids = self._person_assignments(info)
        return person_rows_for(face_ids, person_ids, matrix.face_id).sums(ids, matrix.matrix)

    def _person_assignments(self, info: store.TableInfo) -> tuple[np.ndarray, np.ndarray]:
        """Every assigned face of the table: ``(face_id, person_id)`` sorted by face id (a hook)."""
        a = self.people.assignments(info.name)
        return a.face_id, a.person_id

    # ------------------------------------------------------------------------------------------ writing

    def index(
        self,
        *sources: str,
        table: str = config.DEFAULT_TABLE,
        model: str | None = None,
        workers: int | None = 1,
        executor: str = "local",
        ray_address: str | None = None,
        chunk_size: int = DEFAULT_CHUNK,
        whole_photo_face: bool = False,
        cluster: bool = True,
        on_plan: Callable[[int], None] | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> IndexReport:
        """Embed every face of the photos in ``sources`` into ``table`` (incremental and resumable).

        ``sources`` are folders, files, globs or ``file://``, ``s3://``, ``gs://`` URIs. ``model`` defaults to
        the table's model, or the default model for a new table. ``workers=None`` embeds in one process per
        CPU core (about 1.5x faster on 2 cores; guard your script with ``if __name__ == "__main__":``), the
        default 1 in this process. ``whole_photo_face`` indexes a photo where no face is detected as one face
        (for photos that are face crops: ID photos, thumbnails), aligned by the landmarks found on it.

        ``executor="ray"`` embeds on a Ray cluster: ``ray_address`` (else ``$RAY_ADDRESS``, else a local Ray
        runtime); the cluster's workers read the photos themselves and this process commits the results (see
        :mod:`lookalike.executors.raycluster`). ``workers`` then caps the tasks in flight (default: the cluster's
        CPUs).

        When the job changed the table, its new faces are then grouped into persons (``cluster=False`` skips it;
        incremental, as :meth:`People.cluster <lookalike.people.People.cluster>`): search rows and ``verify``
        decide "same person" by the table's persons where they can (:mod:`lookalike.people.decide`).
        ``report.people`` says what the grouping did, or why it could not run (the job still succeeds).
        """
        if not sources:
            raise InvalidArgument("index needs at least one source folder, file, glob or URI")
        options = JobOptions(
            workers=workers,
            executor=executor,
            ray_address=ray_address,
            chunk_size=chunk_size,
            storage_options=self.storage_options,
            max_pixels=self.max_pixels,
            whole_photo_face=whole_photo_face,
            on_plan=on_plan,
            on_progress=on_progress,
        )
        report = run_index(self.path, sources, table=table, model=model, options=options)
        if cluster and (report.added or report.updated or report.removed):
            report.people = self.people.cluster_reported(table)
        return report

    def drop_table(self, table: str) -> None:
        with writer(self.path) as con:
            info = store.get_table(con, table)
            face_indexes.drop_all(con, self.path, info)
            store.drop_table(con, table)

    def export_table(
        self, table: str, to: str, *, shard_rows: int = transfer.DEFAULT_SHARD_ROWS
    ) -> transfer.ExportReport:
        """Write ``table``'s rows as Parquet shards plus a ``manifest.json`` into folder ``to`` (a path,
        ``file://``, ``s3://`` or ``gs://``), loadable as it is by BigQuery, Spark and DuckDB (docs/export.md)."""
        with reader(self.path) as con:
            return transfer.export_table(con, table, to, shard_rows=shard_rows, options=self.storage_options)

    def import_table(self, uri: str, table: str | None = None, *, cluster: bool = True) -> transfer.ImportReport:
        """Read the export in folder ``uri`` into ``table`` (default: the exported table's name), replacing the
        rows of photos already there; all or nothing. Then recalibrate, refresh vector indexes and group the new
        faces into persons (unless ``cluster=False``), as an index run does, so that a later ``index`` of the same
        photos embeds nothing new and searches decide as they would on the exporting dataset."""
        with writer(self.path) as con:
            report = transfer.import_table(con, uri, table, options=self.storage_options)
        report.calibration = recalibrate(self.path, report.table)
        report.vector_indexes = refresh_vector_indexes(self.path, report.table)
        if cluster and report.rows:
            report.people = self.people.cluster_reported(report.table)
        return report

    # ------------------------------------------------------------------------------------------ vector indexes

    def create_vector_index(
        self,
        table: str = config.DEFAULT_TABLE,
        *,
        index_type: str = "TREE_AH",
        distance: str = "COSINE",
        num_lists: int | None = None,
        leaf_node_embedding_count: int | None = None,
        name: str | None = None,
        replace: bool = False,
    ) -> dict[str, object]:
        """Build a vector index on ``table`` (BigQuery's ``CREATE VECTOR INDEX``); searches then use it.

        ``TREE_AH`` (compressed codes scanned whole, best candidates re-ranked exactly) keeps nearly every true
        match at a fraction of the time; ``IVF`` (exact vectors in lists) is exact only when every list is
        searched. See :mod:`lookalike.search.vindex` and the README's measured recall.
        """
        options: dict[str, object] = {"index_type": index_type, "distance_type": distance}
        if num_lists is not None:
            options["ivf_options"] = {"num_lists": num_lists}
        if leaf_node_embedding_count is not None:
            options["tree_ah_options"] = {"leaf_node_embedding_count": leaf_node_embedding_count}
        spec = parse_index_options(options)
        with writer(self.path) as con:
            info = store.get_table(con, table)
            rec = face_indexes.create(con, self.path, info, spec, name=name, replace=replace)
            return self._describe(con, info, rec)

    def rebuild_vector_index(self, table: str = config.DEFAULT_TABLE, name: str | None = None) -> dict[str, object]:
        """Train the table's index again over its rows as they are now (``ALTER VECTOR INDEX ... REBUILD``)."""
        with writer(self.path) as con:
            info = store.get_table(con, table)
            rec = face_indexes.rebuild(con, self.path, info, name)
            return self._describe(con, info, rec)

    def drop_vector_index(self, table: str = config.DEFAULT_TABLE, name: str | None = None) -> str:
        """Drop the table's index and delete its files; returns its name."""
        with writer(self.path) as con:
            info = store.get_table(con, table)
            return face_indexes.drop(con, self.path, info, name).name

    def vector_indexes(self, table: str | None = None) -> list[dict[str, object]]:
        """Every vector index of the dataset's face tables (or of ``table``), with its coverage and drift."""
        if not os.path.exists(self.path):
            return []
        out: list[dict[str, object]] = []
        with reader(self.path) as con:
            names = [table] if table is not None else store.table_names(con)
            for name in names:
                info = store.get_table(con, name)
                for rec in face_indexes.indexes(con, info):
                    out.append(self._describe(con, info, rec))
        return out

    def _describe(
        self, con: duckdb.DuckDBPyConnection, info: store.TableInfo, rec: face_indexes.IndexRecord
    ) -> dict[str, object]:
        return face_indexes.describe(self.path, rec, store.face_ids(con, info), info.name)

    # ------------------------------------------------------------------------------------------ reading

    def tables(self) -> list[dict[str, object]]:
        """Each table with its model, dimension, version and object / face / error counts."""
        if not os.path.exists(self.path):
            return []
        with reader(self.path) as con:
            stats = store.table_stats(con)
            for row in stats:
                info = store.get_table(con, str(row["name"]))
                recs = face_indexes.indexes(con, info)
                row["vector_index"] = self._describe(con, info, recs[0]) if recs else None
            return stats

    def table(self, name: str = config.DEFAULT_TABLE) -> store.TableInfo:
        with reader(self.path) as con:
            return store.get_table(con, name)

    def _table_info(self, table: str) -> store.TableInfo:
        """The table's catalog row (a hook: ``lookalike.server`` reads it from its snapshot)."""
        return self.table(table)

    def _matrix(self, table: str) -> tuple[store.TableInfo, store.FaceMatrix]:
        """The table and its face matrix (a hook: ``lookalike.server`` reads it from a lock-tolerant snapshot)."""
        with reader(self.path) as con:
            info = store.get_table(con, table)

            def load() -> store.FaceMatrix:
                return load_cached_matrix(con, self.path, info)

            return info, cache.get_matrix(self.path, table, info.version, load)

    # ------------------------------------------------------------------------------------------ faces

    def _vector_index(self, info: store.TableInfo) -> face_indexes.IndexRecord | None:
        """The table's vector index record, if any (a hook, like :meth:`_matrix`)."""
        with reader(self.path) as con:
            recs = face_indexes.indexes(con, info)
        return recs[0] if recs else None

    def _read_image(self, query: str | bytes) -> tuple[str, np.ndarray]:
        if isinstance(query, bytes):
            return "<upload>", decode_image(query, uri="<upload>", max_pixels=self.max_pixels)
        uri = normalise_source(query)
        data = read_object(uri, options=self.storage_options)
        return uri, decode_image(data, uri=uri, max_pixels=self.max_pixels)

    def embed(
        self, images: Sequence[str | bytes], *, model: str | None = None, largest: bool = False
    ) -> list[list[QueryFace]]:
        """Faces and embeddings of each image (all faces, or only the largest), in one batched model call."""
        face_model = get_model(model)
        loaded = [self._read_image(img) for img in images]
        found = detect_and_embed(face_model, [img for _, img in loaded], largest_only=largest)
        out: list[list[QueryFace]] = []
        for (uri, _), (faces, emb) in zip(loaded, found, strict=True):
            out.append(_query_faces(uri, faces, emb))
        return out

    def _expand(self, images: Sequence[str | bytes]) -> list[str | bytes]:
        """Query images, with folders, prefixes (``.../``) and globs expanded to the images they hold."""
        out: list[str | bytes] = []
        for img in images:
            if isinstance(img, str) and (has_glob(img) or img.endswith("/") or os.path.isdir(img)):
                listed = [info.uri for _, info in list_objects([normalise_source(img)], options=self.storage_options)]
                if not listed:
                    raise ObjectNotFound(f"no images in query source {img!r}")
                out.extend(listed)
            else:
                out.append(img)
        return out

    def _indexed_face(self, info: store.TableInfo, query: str) -> QueryFace:
        """The indexed face ``face:ID`` as a query (a hook, like :meth:`_matrix`)."""
        raw = query[len(_FACE_PREFIX) :]
        if not raw.isdigit():
            raise InvalidArgument(f"bad face reference {query!r}", hint="use face:ID with a numeric face id")
        with reader(self.path) as con:
            rows = store.face_rows(con, info, face_ids=[int(raw)])
        if not rows or rows[0]["embedding"] is None:
            raise SearchError(f"no indexed face with id {raw} in table {info.name!r}")
        row = rows[0]
        bbox = tuple(float(v) for v in row["bbox"])  # type: ignore[attr-defined]
        return QueryFace(
            uri=str(row["uri"]),
            face_index=int(row["face_index"]),  # type: ignore[call-overload]
            bbox=bbox,  # type: ignore[arg-type]
            embedding=row["embedding"],  # type: ignore[arg-type]
        )

    def _query_faces(
        self,
        info: store.TableInfo,
        queries: Sequence[Query],
        largest: bool,
        skip_errors: bool,
        whole_photo_face: bool = False,
    ) -> tuple[list[QueryFace], list[tuple[str, str]]]:
        faces: list[QueryFace] = []
        errors: list[tuple[str, str]] = []
        images: list[str | bytes] = []
        for q in queries:
            if isinstance(q, np.ndarray):
                vecs = np.atleast_2d(np.asarray(q, np.float32))
                faces.extend(QueryFace("<vector>", i, None, v) for i, v in enumerate(vecs))
            elif isinstance(q, str) and q.startswith(_FACE_PREFIX):
                faces.append(self._indexed_face(info, q))
            else:
                images.append(q)
        decoded: list[tuple[str, np.ndarray]] = []
        for img in self._expand(images):
            try:
                decoded.append(self._read_image(img))
            except LookalikeError as err:
                if not skip_errors:
                    raise
                errors.append(("<upload>" if isinstance(img, bytes) else img, str(err)))
        found = detect_and_embed(
            get_model(info.model),
            [img for _, img in decoded],
            largest_only=largest,
            whole_photo_face=whole_photo_face,
        )
        for (uri, _), (img_faces, emb) in zip(decoded, found, strict=True):
            if not img_faces:
                no_face = NoFaceError(f"no face detected in query image {uri!r}")
                if not skip_errors:
                    raise no_face
                errors.append((uri, str(no_face)))
                continue
            faces.extend(_query_faces(uri, img_faces, emb))
        return faces, errors

    def search(
        self,
        queries: Query | Sequence[Query],
        *,
        table: str = config.DEFAULT_TABLE,
        top_k: int = 5,
        distance: Distance | str = "cosine",
        largest: bool = False,
        skip_errors: bool = False,
        threshold: float | None = None,
        fraction_lists: float | None = None,
        exact: bool = False,
        whole_photo_face: bool = False,
        people: bool = False,
    ) -> SearchResult:
        """The ``top_k`` nearest indexed faces to every face of every query, in one pass over the table.

        Queries are image paths/URIs (every face in them, or only the largest with ``largest=True``), raw image
        bytes, ``face:ID`` for an indexed face, or embedding vectors. ``skip_errors`` records a query that
        fails (unreadable, no face) in ``result.errors`` instead of raising. ``whole_photo_face`` takes a query
        photo where no face is detected as one face (a face crop).

        Each row's ``same_person`` follows the table's calibration (:mod:`lookalike.search.calibration`):
        ``True``, ``False``, or ``None`` when the distance lies where this table's population can't be told
        apart (the row's ``same_person_reason`` says why). ``threshold`` (a cosine distance) overrides it.

        When the table has a vector index the search uses it (``fraction_lists`` is BigQuery's
        ``fraction_lists_to_search``; ``exact=True`` searches every row instead); ``result.index_usage`` says
        how. Faces added since the index was built are searched exactly, so none is missed.

        Rows name the person each face is in (``person_id``, ``person_name``; see :attr:`people`). With
        ``people=True`` the rows are the ``top_k`` nearest *persons* instead: one row each, the person's nearest
        face, so a person with many photos takes one row, not all of them (faces in no person are left out).
        """
        dist = parse_distance(distance)
        knobs = SearchKnobs(fraction_lists_to_search=fraction_lists, use_brute_force=exact)
        if top_k < 1:
            raise InvalidArgument(f"top_k must be at least 1, got {top_k}")
        qlist: list[Query] = [queries] if isinstance(queries, (str, bytes, np.ndarray)) else list(queries)
        info, matrix = self._matrix(table)
        qfaces, errors = self._query_faces(info, qlist, largest, skip_errors, whole_photo_face)
        if not qfaces:
            return SearchResult(hits=[], queries=[], errors=errors)
        qmat = np.stack([q.embedding for q in qfaces]).astype(np.float32)
        if qmat.shape[1] != info.dim:
            raise SearchError(f"query vectors have {qmat.shape[1]} dimensions, table {table!r} has {info.dim}")
        rec = self._vector_index(info)
        if people:
            idx, dists, usage = self._nearest_persons(info, rec, matrix, qmat, top_k, dist, knobs)
        else:
            idx, dists, usage = face_indexes.search(self.path, rec, matrix, qmat, top_k, dist, knobs)
        owners = self._persons_for(info, sorted({int(matrix.face_id[r]) for r in np.unique(idx[idx >= 0])}))
        cal = info.calibration if threshold is None else user_calibration(threshold, info.calibration.card_threshold)
        why = reason(cal)
        verdicts = decide_array(dists, cal, dist)
        # the table's persons decide where they can (lookalike.people.decide); a user's threshold bypasses them
        found = self._query_persons(info, matrix, qmat, idx, owners) if threshold is None else None
        if found is None:
            decided = Verdicts.by_distance(verdicts)
        else:
            qperson, row_person, cosine = found
            confirm = matrix.size >= CONFIRM_FACES
            decided = person_verdicts(verdicts, cosine, qperson, row_person, cal.card_threshold, confirm=confirm)
        hits: list[SearchHit] = []
        for qi, q in enumerate(qfaces):
            for rank, (row, d) in enumerate(zip(idx[qi], dists[qi], strict=True), start=1):
                if row < 0:
                    break
                bbox = matrix.bbox[row]
                verdict = decided.same_person[qi][rank - 1]
                owner = owners.get(int(matrix.face_id[row]))
                hits.append(
                    SearchHit(
                        query_uri=q.uri,
                        query_face=q.face_index,
                        query_bbox=q.bbox,
                        rank=rank,
                        uri=str(matrix.uri[row]),
                        face=int(matrix.face_index[row]),
                        face_id=int(matrix.face_id[row]),
                        bbox=(float(bbox[0]), float(bbox[1]), float(bbox[2]), float(bbox[3])),
                        distance=float(d),
                        same_person=verdict,
                        same_person_reason=(decided.reasons[qi][rank - 1] or why) if verdict is None else None,
                        same_person_basis=decided.basis[qi][rank - 1],
                        person_id=owner[0] if owner else None,
                        person_name=owner[1] if owner else None,
                    )
                )
        return SearchResult(hits=hits, queries=qfaces, errors=errors, calibration=cal, index_usage=usage)

    def _nearest_persons(
        self,
        info: store.TableInfo,
        rec: face_indexes.IndexRecord | None,
        matrix: store.FaceMatrix,
        qmat: np.ndarray,
        top_k: int,
        dist: Distance,
        knobs: SearchKnobs,
    ) -> tuple[np.ndarray, np.ndarray, IndexUsage | None]:
        """For each query, the matrix rows of the nearest face of each of its ``top_k`` nearest persons (-1 pads
        when the table has fewer persons). Fetches more faces until ``top_k`` distinct persons are found."""
        face_ids, person_ids = self._person_assignments(info)
        person_of_row = np.full(matrix.size, -1, np.int64)
        if len(face_ids):
            pos = np.clip(np.searchsorted(face_ids, matrix.face_id), 0, len(face_ids) - 1)
            hit = face_ids[pos] == matrix.face_id
            person_of_row[hit] = person_ids[pos[hit]]
        n_persons = int(np.unique(person_of_row[person_of_row >= 0]).size)
        want = min(top_k, n_persons)
        out_idx = np.full((len(qmat), top_k), -1, np.int64)
        out_dist = np.full((len(qmat), top_k), np.inf, np.float32)
        usage: IndexUsage | None = None
        k = min(matrix.size, max(top_k * 8, 32))
        pending = np.arange(len(qmat))
        while len(pending) and want > 0:
            idx, dists, usage = face_indexes.search(self.path, rec, matrix, qmat[pending], k, dist, knobs)
            still: list[int] = []
            for row_i, qi in enumerate(pending):
                seen: list[int] = []
                for r, d in zip(idx[row_i], dists[row_i], strict=True):
                    p = int(person_of_row[r]) if r >= 0 else -1
                    if p < 0 or p in seen:
                        continue
                    out_idx[qi, len(seen)] = r
                    out_dist[qi, len(seen)] = d
                    seen.append(p)
                    if len(seen) == want:
                        break
                if len(seen) < want and k < matrix.size:
                    still.append(int(qi))
            pending = np.asarray(still, np.int64)
            k = min(matrix.size, k * 4)
        return out_idx, out_dist, usage

    def verify(
        self,
        a: str | bytes,
        b: str | bytes,
        *,
        model: str | None = None,
        table: str | None = None,
        threshold: float | None = None,
    ) -> VerifyResult:
        """Compare the largest face of image ``a`` with the largest face of image ``b``.

        The decision uses ``threshold`` (a cosine distance) when given, else the calibration of ``table`` (its
        model then embeds), else the model card's fallback: sure up to its ``safe_threshold``, ``None``
        (uncertain) up to its LFW threshold; see :mod:`lookalike.search.calibration`.
        """
        info = self._table_info(table) if table is not None else None
        if info is not None and model is not None and get_card(model).name != info.model:
            raise InvalidArgument(f"table {table!r} holds {info.model!r} embeddings, not {model!r}")
        card = get_card(info.model if info is not None else model)
        if threshold is not None:
            cal = user_calibration(threshold, card.threshold)
        elif info is not None:
            cal = info.calibration
        elif not card.calibrated:
            cal = uncalibrated(card.name)
        else:
            cal = card_calibration(card.threshold, card.safe_threshold, note="verify without a table")
        fa, fb = self.embed([a, b], model=card.name, largest=True)
        for faces, img in ((fa, a), (fb, b)):
            if not faces:
                name = "<upload>" if isinstance(img, bytes) else img
                raise NoFaceError(f"no face detected in {name!r}")
        dist = max(0.0, 1.0 - float(np.dot(fa[0].embedding, fb[0].embedding)))
        decided = Verdicts.by_distance([[decide(dist, cal)]])
        persons: tuple[int | None, int | None] = (None, None)
        if info is not None and threshold is None:
            pa, pb, table_faces = self._persons_of_faces(info, np.stack([fa[0].embedding, fb[0].embedding]))
            persons = (pa if pa >= 0 else None, pb if pb >= 0 else None)
            decided = person_verdicts(
                decided.same_person,
                np.array([[dist]]),
                np.array([pa]),
                np.array([[pb]]),
                cal.card_threshold,
                confirm=table_faces >= CONFIRM_FACES,
            )
        return VerifyResult(
            a=fa[0],
            b=fb[0],
            model=card.name,
            distance=dist,
            threshold=cal.threshold,
            same_person=decided.same_person[0][0],
            calibration=cal,
            same_person_basis=decided.basis[0][0],
            persons=persons,
            person_reason=decided.reasons[0][0],
        )

    def _persons_of_faces(self, info: store.TableInfo, vectors: np.ndarray) -> tuple[int, int, int]:
        """The persons of ``info``'s table that two face vectors are in or would join (-1: none), and how many
        faces the table has."""
        info, matrix = self._matrix(info.name)
        if matrix.size == 0:
            return -1, -1, 0
        qmat = np.ascontiguousarray(vectors, np.float32)
        k = min(matrix.size, PERSON_CANDIDATES)
        idx, _, _ = face_indexes.search(self.path, self._vector_index(info), matrix, qmat, k, "cosine", SearchKnobs())
        owners = self._persons_for(info, sorted({int(matrix.face_id[r]) for r in np.unique(idx[idx >= 0])}))
        found = self._query_persons(info, matrix, qmat, idx, owners)
        if found is None:
            return -1, -1, matrix.size
        return int(found[0][0]), int(found[0][1]), matrix.size

    # ------------------------------------------------------------------------------------------ SQL

    def sql(self, text: str, *, on_result: Callable[[SqlResult], None] | None = None) -> list[SqlResult]:
        """Run BigQuery-dialect SQL statements on this dataset; one :class:`~lookalike.sql.SqlResult` each.

        The Google Cloud face-search demo's statements run as they are, with names and paths changed
        (``CREATE MODEL ... OPTIONS(ENDPOINT = 'default')``, ``CREATE EXTERNAL TABLE``,
        ``ML.GENERATE_EMBEDDING``, ``VECTOR_SEARCH``...); see :mod:`lookalike.sql`. Each statement is
        committed when it succeeds; the first that fails raises :class:`~lookalike.errors.SqlError` saying
        where. ``on_result`` is called with each result as soon as its statement has run.
        """
        from lookalike.sql import run_script

        return run_script(
            self.path, text, storage_options=self.storage_options, max_pixels=self.max_pixels, on_result=on_result
        )


def open(path: str | Path | None = None, **kwargs: object) -> Dataset:
    """Open (or create on first write) the dataset at ``path`` (default ``./lookalike.duckdb``)."""
    return Dataset(path, **kwargs)  # type: ignore[arg-type]
