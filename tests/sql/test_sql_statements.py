"""Each statement form and option of the SQL front end."""

from __future__ import annotations

import json
import math
import shutil
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sql_support import DATA, Demo, Small

import lookalike
from lookalike.errors import SqlError, SqlNotSupported
from lookalike.sql import objects, vector

EMB = "ml_generate_embedding_result"
GEN = "ML.GENERATE_EMBEDDING(MODEL `face_search.face-search_model`, {source})"


# ---------------------------------------------------------------------------------------------- CREATE MODEL


def test_create_model_forms(small: Small) -> None:
    results = small.sql(
        """CREATE OR REPLACE MODEL `s.face-model` REMOTE WITH CONNECTION `us.conn` OPTIONS (ENDPOINT = 'default');
           CREATE MODEL IF NOT EXISTS `s.face-model` OPTIONS (ENDPOINT = 'mobilefacenet');
           CREATE OR REPLACE MODEL s.named OPTIONS (endpoint = 'fr-feature');
           DROP MODEL s.named;
           DROP MODEL IF EXISTS s.named"""
    )
    assert [r.message for r in results] == [
        "created model s.face-model (face model fr-feature)",
        "model s.face-model already exists; left unchanged",
        "created model s.named (face model fr-feature)",
        "dropped model s.named",
        "no model dropped",
    ]
    with pytest.raises(SqlError, match=r"model s.face-model already exists.*CREATE OR REPLACE MODEL"):
        small.sql("CREATE MODEL `s.face-model` OPTIONS (ENDPOINT = 'default')")


def test_vertex_endpoint_fails_listing_local_models(small: Small) -> None:
    with pytest.raises(SqlNotSupported) as info:
        small.sql(
            "CREATE OR REPLACE MODEL s.vx REMOTE WITH CONNECTION `us.c` OPTIONS (ENDPOINT = 'multimodalembedding@001')"
        )
    text = str(info.value)
    assert "multimodalembedding@001" in text and "Vertex AI" in text
    for name in ("'default'", "fr-feature (512-d)", "mobilefacenet (192-d)", "dlib-resnet (128-d)"):
        assert name in text
    assert (info.value.line, info.value.column) == (1, 80)  # at the ENDPOINT value
    with pytest.raises(SqlError, match="unknown model ENDPOINT 'fr-featur'"):
        small.sql("CREATE MODEL s.typo OPTIONS (ENDPOINT = 'fr-featur')")
    with pytest.raises(SqlNotSupported, match="training models"):
        small.sql("CREATE MODEL s.lin OPTIONS (model_type = 'linear_reg') AS SELECT 1 AS x")
    with pytest.raises(SqlError, match=r"needs OPTIONS\(ENDPOINT"):
        small.sql("CREATE MODEL s.none OPTIONS (remote_service_type = 'x')")


def test_first_create_makes_the_dataset(small: Small) -> None:
    """In BigQuery the dataset comes from `bq mk`; pasted statements must not fail for the lack of it."""
    results = small.sql(
        f"""CREATE OR REPLACE MODEL `new_ds.face-model` OPTIONS (ENDPOINT = 'default');
            CREATE EXTERNAL TABLE other_ds.faces OPTIONS (object_metadata = 'SIMPLE', uris = ['{small.photos}/*']);
            CREATE TABLE third_ds.t AS SELECT uri FROM other_ds.faces"""
    )
    assert [r.notices for r in results] == [
        [f"created dataset (schema) {name}, which did not exist"] for name in ("new_ds", "other_ds", "third_ds")
    ]
    assert small.rows("SELECT count(*) AS n FROM third_ds.t") == [{"n": 3}]


# ---------------------------------------------------------------------------------------------- object tables


def test_object_table_columns_and_wildcards(small: Small) -> None:
    p = small.photos
    (p / "notes.txt").write_text("not a photo")
    small.sql(
        f"""CREATE EXTERNAL TABLE s.all_objects WITH CONNECTION `us.c`
              OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/*']);
            CREATE EXTERNAL TABLE s.jpgs OPTIONS (object_metadata = 'SIMPLE', uris = ['file://{p}/*.jpg']);
            CREATE EXTERNAL TABLE s.one OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/a.jpg', '{p}/a*'])"""
    )
    res = small.sql("SELECT * FROM s.all_objects")[0]
    assert res.columns == ["uri", "generation", "content_type", "size", "md5_hash", "updated"]
    rows = res.to_pylist()
    # '*' crosses folders (BigQuery's rule) and every object is listed, photo or not
    assert [r["uri"] for r in rows] == [str(p / n) for n in ("a.jpg", "b.jpg", "notes.txt", "sub/c.jpg")]
    a = rows[0]
    assert a["content_type"] == "image/jpeg" and a["size"] == (p / "a.jpg").stat().st_size
    assert a["generation"] == (p / "a.jpg").stat().st_mtime_ns and a["updated"].tzinfo is not None
    jpgs = small.rows("SELECT uri FROM s.jpgs")
    assert [r["uri"] for r in jpgs] == [str(p / n) for n in ("a.jpg", "b.jpg", "sub/c.jpg")]
    assert small.rows("SELECT count(*) AS n FROM s.one") == [{"n": 1}]


def test_metadata_cache_honours_max_staleness_and_refresh(small: Small, monkeypatch: pytest.MonkeyPatch) -> None:
    p = small.photos
    small.sql(
        f"""CREATE EXTERNAL TABLE s.cached OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/*'],
              max_staleness = INTERVAL 1 HOUR, metadata_cache_mode = 'MANUAL');
            CREATE EXTERNAL TABLE s.auto OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/*'],
              max_staleness = INTERVAL '0-0 0 0:30:0' YEAR TO SECOND, metadata_cache_mode = 'AUTOMATIC');
            CREATE EXTERNAL TABLE s.live OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/*'])"""
    )
    shutil.copy(DATA / "gallery/Colin_Powell/Colin_Powell_0001.jpg", p / "d.jpg")
    count = (
        "SELECT (SELECT count(*) FROM s.cached) AS cached, (SELECT count(*) FROM s.auto) AS auto, "
        "(SELECT count(*) FROM s.live) AS live"
    )
    # within max_staleness the cache answers; without max_staleness the URIs are listed on every read
    assert small.rows(count) == [{"cached": 3, "auto": 3, "live": 4}]
    refreshed = small.sql("CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE('s.cached')")[0]
    assert refreshed.message == "refreshed the metadata cache of s.cached (4 objects)"
    assert small.rows(count) == [{"cached": 4, "auto": 3, "live": 4}]
    # once the cache is older than max_staleness, it is listed again
    later = objects.clock() + timedelta(minutes=31)
    monkeypatch.setattr(objects, "clock", lambda: later)
    assert small.rows(count) == [{"cached": 4, "auto": 4, "live": 4}]
    (p / "d.jpg").unlink()
    assert small.rows(count) == [{"cached": 4, "auto": 4, "live": 3}]
    monkeypatch.setattr(objects, "clock", lambda: later + timedelta(hours=2))
    assert small.rows(count) == [{"cached": 3, "auto": 3, "live": 3}]


def test_object_table_option_errors(small: Small) -> None:
    p = small.photos
    with pytest.raises(SqlNotSupported, match="object_metadata = 'SIMPLE'"):
        small.sql(f"CREATE EXTERNAL TABLE s.x OPTIONS (format = 'CSV', uris = ['{p}/*'])")
    with pytest.raises(SqlError, match="unknown option 'foo'.*supported: object_metadata"):
        small.sql(f"CREATE EXTERNAL TABLE s.x OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/*'], foo = 1)")
    with pytest.raises(SqlError, match="uris must be a non-empty array"):
        small.sql("CREATE EXTERNAL TABLE s.x OPTIONS (object_metadata = 'SIMPLE', uris = [])")
    with pytest.raises(SqlError, match="metadata_cache_mode must be one of AUTOMATIC, MANUAL"):
        small.sql(
            f"CREATE EXTERNAL TABLE s.x OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/*'], "
            "max_staleness = INTERVAL 1 HOUR, metadata_cache_mode = 'SOMETIMES')"
        )
    with pytest.raises(SqlError, match="cannot list .*nowhere.*no such file"):
        small.sql(f"CREATE EXTERNAL TABLE s.x OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/nowhere/*'])")


def test_drop_and_replace_object_tables(small: Small) -> None:
    p = small.photos
    opts = f"OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/*.jpg'])"
    small.sql(f"CREATE EXTERNAL TABLE s.a {opts}; CREATE EXTERNAL TABLE s.b {opts}")
    with pytest.raises(SqlError, match="table s.a already exists"):
        small.sql(f"CREATE EXTERNAL TABLE s.a {opts}")
    assert small.sql(f"CREATE EXTERNAL TABLE IF NOT EXISTS s.a {opts}")[0].message.endswith("left unchanged")
    assert small.sql(f"CREATE OR REPLACE EXTERNAL TABLE s.a {opts}")[0].message.startswith("replaced")
    assert small.sql("DROP EXTERNAL TABLE s.a")[0].message == "dropped object table s.a"
    assert small.sql("DROP TABLE s.b")[0].message == "dropped object table s.b"
    assert small.sql("DROP EXTERNAL TABLE IF EXISTS s.b")[0].message.startswith("no object table")
    with pytest.raises(SqlError, match="table s.a was not found"):
        small.sql("SELECT * FROM s.a")
    assert small.rows("SELECT count(*) AS n FROM lookalike_sql_object_cache") == [{"n": 0}]


# ---------------------------------------------------------------------------------------------- ML.GENERATE_EMBEDDING


def test_generate_embedding_rows_statuses_and_face_columns(small: Small) -> None:
    p = small.photos
    Image.new("RGB", (120, 120), (200, 180, 160)).save(p / "blank.png")
    (p / "notes.txt").write_text("not a photo")
    small.sql(f"CREATE EXTERNAL TABLE s.photos OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/*'])")
    res = small.sql(
        "SELECT * FROM ML.GENERATE_EMBEDDING(MODEL s.m, TABLE s.photos, "
        "STRUCT(TRUE AS flatten_json_output, 512 AS output_dimensionality))"
    )[0]
    assert res.columns == [
        "uri",
        "generation",
        "content_type",
        "size",
        "md5_hash",
        "updated",
        EMB,
        "ml_generate_embedding_status",
        "face_index",
        "face_bbox",
        "face_score",
    ]
    rows = {str(r["uri"]).removeprefix(str(p) + "/"): r for r in res.to_pylist()}
    assert sorted(rows) == ["a.jpg", "b.jpg", "blank.png", "notes.txt", "sub/c.jpg"]
    a = rows["a.jpg"]
    assert a["ml_generate_embedding_status"] == "" and a["face_index"] == 0
    vec = np.asarray(a[EMB])
    assert vec.shape == (512,) and math.isclose(float(np.linalg.norm(vec)), 1.0, abs_tol=1e-4)
    x1, y1, x2, y2 = a["face_bbox"]
    assert 0 <= x1 < x2 and 0 <= y1 < y2 and 0.5 < a["face_score"] <= 1.0
    for name, status in (("blank.png", "no face detected"), ("notes.txt", "error: cannot decode")):
        row = rows[name]
        assert row[EMB] is None and row["face_index"] is None and row["ml_generate_embedding_status"].startswith(status)


def test_generate_embedding_reuses_unchanged_objects(small: Small) -> None:
    p = small.photos
    small.sql(f"CREATE EXTERNAL TABLE s.photos OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/*'])")
    query = "SELECT uri, {emb} FROM ML.GENERATE_EMBEDDING(MODEL s.m, (SELECT * FROM s.photos WHERE uri LIKE '%a.jpg'))"
    first = small.sql(query.format(emb=EMB))[0]
    assert first.notices == ["ML.GENERATE_EMBEDDING (fr-feature): 1 object(s) embedded, 0 reused"]
    everything = small.sql(f"SELECT uri, {EMB} FROM ML.GENERATE_EMBEDDING(MODEL s.m, TABLE s.photos)")[0]
    assert everything.notices == ["ML.GENERATE_EMBEDDING (fr-feature): 2 object(s) embedded, 1 reused"]
    again = small.sql(query.format(emb=EMB))[0]
    assert again.notices == ["ML.GENERATE_EMBEDDING (fr-feature): 0 object(s) embedded, 1 reused"]
    assert again.to_pylist() == first.to_pylist()
    # a changed photo is embedded again: now it shows Hugo Chavez
    shutil.copy(p / "b.jpg", p / "a.jpg")
    changed = small.sql(query.format(emb=EMB))[0]
    assert changed.notices == ["ML.GENERATE_EMBEDDING (fr-feature): 1 object(s) embedded, 0 reused"]
    b = next(r for r in everything.to_pylist() if str(r["uri"]).endswith("b.jpg"))
    assert np.allclose(changed.to_pylist()[0][EMB], b[EMB], atol=1e-5)


def test_generate_embedding_options_and_inputs(small: Small) -> None:
    p = small.photos
    small.sql(f"CREATE EXTERNAL TABLE s.photos OPTIONS (object_metadata = 'SIMPLE', uris = ['{p}/*.jpg'])")
    with pytest.raises(SqlError) as info:
        small.sql(
            "SELECT * FROM ML.GENERATE_EMBEDDING(MODEL s.m, TABLE s.photos, STRUCT(1408 AS output_dimensionality))"
        )
    assert "cannot give 1408-dimensional embeddings; it can give: 512" in str(info.value)
    with pytest.raises(SqlError, match="unknown ML.GENERATE_EMBEDDING parameter 'task_type'"):
        small.sql("SELECT * FROM ML.GENERATE_EMBEDDING(MODEL s.m, TABLE s.photos, STRUCT('x' AS task_type))")
    with pytest.raises(SqlError, match="has no uri column"):
        small.sql("SELECT * FROM ML.GENERATE_EMBEDDING(MODEL s.m, (SELECT 'hello' AS content))")
    # any query with a uri column will do, and its other columns come through
    rows = small.rows(
        f"SELECT label, face_index, ml_generate_embedding_status AS status FROM ML.GENERATE_EMBEDDING("
        f"MODEL s.m, (SELECT '{p}/b.jpg' AS uri, 'chavez' AS label UNION ALL SELECT '{p}/gone.jpg', 'gone'))"
    )
    assert rows[0] == {"label": "chavez", "face_index": 0, "status": ""}
    assert rows[1]["label"] == "gone" and rows[1]["status"].startswith("error:") and "gone.jpg" in rows[1]["status"]
    # flatten_json_output = FALSE gives the JSON a Vertex AI endpoint answers with
    raw = small.rows(
        "SELECT ml_generate_embedding_result AS r FROM ML.GENERATE_EMBEDDING(MODEL s.m, "
        "(SELECT * FROM s.photos WHERE uri LIKE '%b.jpg'), STRUCT(FALSE AS flatten_json_output))"
    )
    assert len(json.loads(raw[0]["r"])["predictions"][0]["imageEmbedding"]) == 512


def test_table_functions_inside_ctes_and_joins(demo: Demo) -> None:
    rows = demo.rows(
        f"""WITH q AS (
              SELECT * FROM {GEN.format(source="(SELECT * FROM face_search.faces WHERE uri LIKE '%Hugo_Chavez_0010%')")}
            ),
            hits AS (
              SELECT query.uri AS q, base.uri AS b, distance
              FROM VECTOR_SEARCH(TABLE face_search.face_embeddings, '{EMB}', TABLE q, top_k => 3,
                                 distance_type => 'COSINE')
            )
            SELECT h.b, f.size, h.distance FROM hits h JOIN face_search.faces f ON f.uri = h.b ORDER BY h.distance"""
    )
    assert len(rows) == 3 and str(rows[0]["b"]).endswith("Hugo_Chavez_0010.jpg") and rows[0]["size"] > 0
    assert [r["distance"] for r in rows] == sorted(r["distance"] for r in rows)


# ---------------------------------------------------------------------------------------------- VECTOR_SEARCH


def _search(demo: Demo, args: str, query: str = "%Tony_Blair_0010%") -> list[dict[str, object]]:
    return demo.rows(
        f"SELECT base.uri AS uri, distance FROM VECTOR_SEARCH(TABLE face_search.face_embeddings, '{EMB}', "
        f"(SELECT * FROM face_search.face_embeddings WHERE uri LIKE '{query}'){args})"
    )


def test_vector_search_defaults_are_bigquerys(demo: Demo) -> None:
    default = _search(demo, "")
    assert len(default) == 10  # top_k 10
    explicit = _search(demo, ", top_k => 10, distance_type => 'EUCLIDEAN'")
    assert default == explicit
    cosine = {r["uri"]: r["distance"] for r in _search(demo, ", top_k => 10, distance_type => 'COSINE'")}
    dot = {r["uri"]: r["distance"] for r in _search(demo, ", top_k => 10, distance_type => 'DOT_PRODUCT'")}
    assert list(cosine) == [r["uri"] for r in default] == list(dot)  # one ranking for unit vectors
    for row in default:  # unit vectors: euclidean^2 = 2 * cosine, dot = cosine - 1
        c = cosine[row["uri"]]
        assert row["distance"] == pytest.approx(math.sqrt(max(0.0, 2 * c)), abs=2e-3)
        assert dot[row["uri"]] == pytest.approx(c - 1, abs=1e-5)


def test_vector_search_returns_structs_of_all_columns(demo: Demo) -> None:
    res = demo.sql(
        f"SELECT * FROM VECTOR_SEARCH(TABLE face_search.face_embeddings, '{EMB}', "
        f"(SELECT uri AS src, {EMB} AS v FROM face_search.face_embeddings WHERE uri LIKE '%Tony_Blair_0010%'), 'v',"
        " top_k => 2)"
    )[0]
    assert res.columns == ["query", "base", "distance"]
    row = res.to_pylist()[0]
    assert sorted(row["query"]) == ["src", "v"]
    assert "uri" in row["base"] and "face_bbox" in row["base"] and EMB in row["base"]
    assert row["base"]["uri"] == row["query"]["src"]


def test_base_subquery_prefilters(demo: Demo) -> None:
    rows = demo.rows(
        f"SELECT base.uri AS uri FROM VECTOR_SEARCH("
        f"(SELECT * FROM face_search.face_embeddings WHERE uri NOT LIKE '%Tony_Blair%'), '{EMB}', "
        f"(SELECT * FROM face_search.face_embeddings WHERE uri LIKE '%Tony_Blair_0010%'), top_k => 5)"
    )
    assert len(rows) == 5 and not any("Tony_Blair" in str(r["uri"]) for r in rows)


def test_vector_search_exact_for_arbitrary_vectors(demo: Demo) -> None:
    base = np.array([[3.0, 4.0, 0.0], [1.0, 0.0, 0.0], [0.0, -2.0, 1.0], [10.0, 10.0, 10.0]])
    query = np.array([2.0, 1.0, 0.5])
    literal = " UNION ALL ".join(f"SELECT {i} AS id, {v.tolist()} AS v" for i, v in enumerate(base))
    for dist, ref in (
        ("COSINE", 1 - base @ query / (np.linalg.norm(base, axis=1) * np.linalg.norm(query))),
        ("EUCLIDEAN", np.linalg.norm(base - query, axis=1)),
        ("DOT_PRODUCT", -(base @ query)),
    ):
        rows = demo.rows(
            f"SELECT base.id AS id, distance FROM VECTOR_SEARCH(({literal}), 'v', "
            f"(SELECT {query.tolist()} AS v), top_k => 4, distance_type => '{dist}') ORDER BY distance"
        )
        order = np.argsort(ref, kind="stable")
        assert [r["id"] for r in rows] == order.tolist(), dist
        assert [r["distance"] for r in rows] == pytest.approx(ref[order].tolist(), rel=1e-5, abs=1e-5), dist


def test_vector_search_argument_errors(demo: Demo) -> None:
    with pytest.raises(SqlError, match="top_k must be a positive integer"):
        _search(demo, ", top_k => 0")
    with pytest.raises(SqlError, match="unknown distance_type 'MANHATTAN'"):
        _search(demo, ", distance_type => 'MANHATTAN'")
    with pytest.raises(SqlError, match="options is not valid JSON"):
        _search(demo, ", options => '{use_brute_force: true'")
    with pytest.raises(SqlError, match="unknown VECTOR_SEARCH option 'num_probes'"):
        _search(demo, ", options => '{\"num_probes\": 3}'")
    with pytest.raises(SqlError, match=r"fraction_lists_to_search must be a number in \(0, 1\]"):
        _search(demo, ", options => '{\"fraction_lists_to_search\": 2}'")
    with pytest.raises(SqlError, match="the base table has no column ml_generate_embedding_reslt.*did you mean"):
        demo.sql(
            "SELECT * FROM VECTOR_SEARCH(TABLE face_search.face_embeddings, 'ml_generate_embedding_reslt', "
            "TABLE face_search.face_embeddings)"
        )
    with pytest.raises(SqlError, match="column uri of the base table is string, not an ARRAY"):
        demo.sql("SELECT * FROM VECTOR_SEARCH(TABLE face_search.faces, 'uri', TABLE face_search.faces)")
    with pytest.raises(SqlError, match="VECTOR_SEARCH is a table function"):
        demo.sql(
            f"SELECT (SELECT 1 FROM face_search.faces) + VECTOR_SEARCH(TABLE face_search.face_embeddings, "
            f"'{EMB}', TABLE face_search.face_embeddings)"
        )


# ---------------------------------------------------------------------------------------------- vector indexes


def test_vector_index_statements(demo: Demo) -> None:
    demo.sql("CREATE OR REPLACE TABLE face_search.indexed AS SELECT * FROM face_search.face_embeddings")
    n = demo.rows(f"SELECT count(*) AS n FROM face_search.indexed WHERE {EMB} IS NOT NULL")[0]["n"]
    created = demo.sql(
        f"CREATE VECTOR INDEX IF NOT EXISTS face_idx ON face_search.indexed({EMB}) STORING(uri, face_index) "
        "OPTIONS(index_type = 'IVF', distance_type = 'COSINE', ivf_options = '{\"num_lists\": 8}')"
    )[0]
    assert created.message.startswith("created vector index face_idx on face_search.indexed")
    assert f"{n} vectors, 8 lists" in created.message
    again = demo.sql(
        f"CREATE VECTOR INDEX IF NOT EXISTS face_idx ON face_search.indexed({EMB}) OPTIONS(index_type = 'IVF')"
    )[0]
    assert again.message.endswith("left unchanged")
    with pytest.raises(SqlError, match="already exists"):
        demo.sql(f"CREATE VECTOR INDEX face_idx ON face_search.indexed({EMB}) OPTIONS(index_type = 'IVF')")
    (info,) = demo.rows("SELECT * FROM face_search.INFORMATION_SCHEMA.VECTOR_INDEXES WHERE index_name = 'face_idx'")
    assert (info["table_name"], info["index_status"], info["coverage_percentage"]) == ("indexed", "ACTIVE", 100)
    assert info["unindexed_row_count"] == 0 and info["num_lists"] == 8
    assert info["ddl"].startswith("CREATE VECTOR INDEX face_idx ON face_search.indexed(")

    search = (
        f"SELECT base.uri AS uri, distance FROM VECTOR_SEARCH(TABLE face_search.indexed, '{EMB}', "
        f"(SELECT * FROM face_search.indexed WHERE uri LIKE '%Tony_Blair_0010%'), top_k => 3{{opts}})"
    )
    used = demo.sql(search.format(opts=""))[0]
    # the index's distance type is the default; the statistics say how the index was used
    assert used.vector_search_statistics[0]["index_usage_mode"] == "FULLY_USED"
    cosine = demo.rows(search.format(opts=", distance_type => 'COSINE'"))
    assert used.to_pylist() == cosine
    full = demo.sql(search.format(opts=", options => '{\"fraction_lists_to_search\": 1.0}'"))[0]
    brute = demo.sql(search.format(opts=", distance_type => 'COSINE', options => '{\"use_brute_force\": true}'"))[0]
    (stats,) = brute.vector_search_statistics
    assert stats["index_usage_mode"] == "UNUSED"
    assert stats["index_unused_reasons"][0]["code"] == "INDEX_SUPPRESSED_BY_FUNCTION_OPTION"
    # searching every list is exact: the same rows as brute force, the same distances (to float32 rounding)
    assert [r["uri"] for r in full.to_pylist()] == [r["uri"] for r in brute.to_pylist()]
    want = [r["distance"] for r in brute.to_pylist()]
    assert [r["distance"] for r in full.to_pylist()] == pytest.approx(want, abs=1e-6)
    euclid = demo.sql(search.format(opts=", distance_type => 'EUCLIDEAN'"))[0]
    assert [r["uri"] for r in euclid.to_pylist()] == [r["uri"] for r in cosine]  # unit vectors: same ranking

    assert demo.sql("ALTER VECTOR INDEX face_idx ON face_search.indexed REBUILD")[0].message.startswith("rebuilt")
    assert demo.sql("DROP VECTOR INDEX face_idx ON face_search.indexed")[0].message.startswith("dropped")
    assert demo.sql("DROP VECTOR INDEX IF EXISTS face_idx ON face_search.indexed")[0].message.startswith("no vector")
    with pytest.raises(SqlError, match="vector index face_idx on face_search.indexed was not found"):
        demo.sql("DROP VECTOR INDEX face_idx ON face_search.indexed")
    assert demo.rows("SELECT * FROM face_search.INFORMATION_SCHEMA.VECTOR_INDEXES WHERE index_name = 'face_idx'") == []


def test_rows_written_after_the_build_are_found(demo: Demo, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows inserted after the build (before any refresh) are searched exactly; deleted rows never come back;
    a pre-filter is served through the index and still gives top_k rows."""
    demo.sql(
        "CREATE OR REPLACE TABLE face_search.late AS SELECT * FROM face_search.face_embeddings "
        "WHERE uri NOT LIKE '%Serena_Williams%'"
    )
    demo.sql(f"CREATE VECTOR INDEX late_idx ON face_search.late({EMB}) OPTIONS(index_type = 'TREE_AH')")
    monkeypatch.setattr(vector, "refresh_table", lambda ctx, table: None)  # as if the refresh had not run yet
    demo.sql(
        "INSERT INTO face_search.late SELECT * FROM face_search.face_embeddings WHERE uri LIKE '%Serena_Williams%'"
    )
    demo.sql("DELETE FROM face_search.late WHERE uri LIKE '%Tony_Blair_0001%'")
    (info,) = demo.rows("SELECT * FROM face_search.INFORMATION_SCHEMA.VECTOR_INDEXES WHERE index_name = 'late_idx'")
    assert info["coverage_percentage"] < 100 and info["unindexed_row_count"] > 0
    search = (
        f"SELECT base.uri AS uri, distance FROM VECTOR_SEARCH({{base}}, '{EMB}', "
        f"(SELECT * FROM face_search.face_embeddings WHERE uri LIKE '%{{who}}_0010%'), top_k => 4, "
        "distance_type => 'COSINE'{opts})"
    )
    late = demo.sql(search.format(base="TABLE face_search.late", who="Serena_Williams", opts=""))[0]
    assert late.vector_search_statistics[0]["index_usage_mode"] == "PARTIALLY_USED"
    exact = demo.rows(
        search.format(
            base="TABLE face_search.late", who="Serena_Williams", opts=", options => '{\"use_brute_force\": true}'"
        )
    )
    assert [r["uri"] for r in late.to_pylist()] == [r["uri"] for r in exact]
    assert "Serena_Williams" in late.to_pylist()[1]["uri"]  # [0] is the query photo itself
    blair = demo.rows(search.format(base="TABLE face_search.late", who="Tony_Blair", opts=""))
    assert not any("Tony_Blair_0001" in r["uri"] for r in blair)
    # a pre-filter keeps top_k rows, all of them matching it
    filtered = demo.sql(
        search.format(base="(SELECT * FROM face_search.late WHERE uri LIKE '%Bush%')", who="Tony_Blair", opts="")
    )[0]
    assert filtered.vector_search_statistics[0]["index_usage_mode"] in ("FULLY_USED", "PARTIALLY_USED")
    assert len(filtered.to_pylist()) == 4 and all("Bush" in r["uri"] for r in filtered.to_pylist())
    monkeypatch.undo()
    demo.sql(
        "INSERT INTO face_search.late SELECT * FROM face_search.face_embeddings WHERE uri LIKE '%Tony_Blair_0001%'"
    )
    (info,) = demo.rows("SELECT * FROM face_search.INFORMATION_SCHEMA.VECTOR_INDEXES WHERE index_name = 'late_idx'")
    assert info["coverage_percentage"] == 100  # DML refreshes the index


def test_vector_index_errors(demo: Demo) -> None:
    demo.sql("CREATE OR REPLACE TABLE face_search.idx2 AS SELECT * FROM face_search.face_embeddings LIMIT 3")
    with pytest.raises(SqlError, match="index_type must be 'IVF' or 'TREE_AH', got 'HNSW'"):
        demo.sql(f"CREATE VECTOR INDEX i ON face_search.idx2({EMB}) OPTIONS(index_type = 'HNSW')")
    with pytest.raises(SqlError, match="num_lists must be an integer in 1..5000"):
        demo.sql(
            f"CREATE VECTOR INDEX i ON face_search.idx2({EMB}) OPTIONS(index_type = 'IVF', "
            "ivf_options = '{\"num_lists\": 0}')"
        )
    with pytest.raises(SqlError, match="unknown vector index option"):
        demo.sql(f"CREATE VECTOR INDEX i ON face_search.idx2({EMB}) OPTIONS(index_type = 'IVF', lists = 3)")
    with pytest.raises(SqlError, match="tree_ah_options goes with index_type = 'TREE_AH'"):
        demo.sql(
            f"CREATE VECTOR INDEX i ON face_search.idx2({EMB}) OPTIONS(index_type = 'IVF', "
            "tree_ah_options = '{\"leaf_node_embedding_count\": 100}')"
        )
    with pytest.raises(SqlError, match="a vector index needs an ARRAY<FLOAT64> column"):
        demo.sql("CREATE VECTOR INDEX i ON face_search.idx2(uri) OPTIONS(index_type = 'IVF')")
    with pytest.raises(SqlError, match="table face_search.idx3 was not found.*did you mean face_search.idx2"):
        demo.sql(f"CREATE VECTOR INDEX i ON face_search.idx3({EMB}) OPTIONS(index_type = 'IVF')")
    demo.sql("CREATE OR REPLACE TABLE face_search.idx4 AS SELECT * FROM face_search.face_embeddings")
    with pytest.raises(SqlError, match="num_lists 4000 is above the"):
        demo.sql(
            f"CREATE VECTOR INDEX i ON face_search.idx4({EMB}) OPTIONS(index_type = 'IVF', "
            "ivf_options = '{\"num_lists\": 4000}')"
        )
    small = demo.sql(f"CREATE VECTOR INDEX i ON face_search.idx2({EMB}) OPTIONS(index_type = 'TREE_AH')")[0]
    assert "3 vectors, 1 leaf" in small.message  # a tiny table is indexed too: its vectors kept exact
    (info,) = demo.rows("SELECT * FROM face_search.INFORMATION_SCHEMA.VECTOR_INDEXES WHERE table_name = 'idx2'")
    assert info["coverage_percentage"] == 100
    found = demo.sql(
        f"SELECT * FROM VECTOR_SEARCH(TABLE face_search.idx2, '{EMB}', TABLE face_search.idx2, top_k => 1)"
    )
    assert found[0].vector_search_statistics[0]["index_usage_mode"] == "FULLY_USED"
    demo.sql("CREATE OR REPLACE TABLE face_search.idx5 AS SELECT * FROM face_search.face_embeddings LIMIT 0")
    empty = demo.sql(f"CREATE VECTOR INDEX e ON face_search.idx5({EMB}) OPTIONS(index_type = 'IVF')")[0]
    assert "no vectors yet" in empty.message
    found = demo.sql(
        f"SELECT * FROM VECTOR_SEARCH(TABLE face_search.idx5, '{EMB}', TABLE face_search.idx2, top_k => 1)"
    )
    assert found[0].vector_search_statistics[0]["index_unused_reasons"][0]["code"] == "NO_ROWS"
    demo.sql("INSERT INTO face_search.idx5 SELECT * FROM face_search.face_embeddings LIMIT 5")  # DML builds it
    (info,) = demo.rows("SELECT * FROM face_search.INFORMATION_SCHEMA.VECTOR_INDEXES WHERE table_name = 'idx5'")
    assert info["coverage_percentage"] == 100 and info["unindexed_row_count"] == 0
    with pytest.raises(SqlError, match="INFORMATION_SCHEMA.TABLES_X is not supported"):
        demo.sql("SELECT * FROM face_search.INFORMATION_SCHEMA.TABLES_X")
    demo.sql("CREATE OR REPLACE TABLE face_search.idx2 AS SELECT * FROM face_search.face_embeddings LIMIT 3")
    # replacing the table dropped its index
    assert demo.sql("DROP VECTOR INDEX IF EXISTS i ON face_search.idx2")[0].message.startswith("no vector index")


# ---------------------------------------------------------------------------------------------- everything else


def test_general_sql_through_duckdb(demo: Demo) -> None:
    results = demo.sql(
        """CREATE SCHEMA IF NOT EXISTS scratch;
           CREATE OR REPLACE TABLE `scratch.people` AS
             SELECT REGEXP_EXTRACT(uri, r'/([A-Za-z_]+)_[0-9]+\\.jpg$') AS person, uri
             FROM face_search.faces;
           INSERT INTO scratch.people (person, uri) VALUES ('Nobody', 'none.jpg');
           DELETE FROM scratch.people WHERE person = 'Nobody';
           SELECT p.person, COUNT(*) AS photos, SAFE_DIVIDE(SUM(e.face_score), COUNT(*)) AS mean_score,
                  ARRAY_LENGTH(ANY_VALUE(e.ml_generate_embedding_result)) AS dim
           FROM `myproject.scratch.people` AS p
           JOIN face_search.face_embeddings AS e USING (uri)
           GROUP BY p.person ORDER BY p.person LIMIT 3;
           DROP TABLE scratch.people"""
    )
    assert [r.message for r in results[:4]] == [
        "created schema scratch",
        "created or replaced table scratch.people (48 rows)",
        "inserted 1 rows",
        "deleted 1 rows",
    ]
    rows = results[4].to_pylist()
    assert [r["person"] for r in rows] == ["Ariel_Sharon", "Colin_Powell", "Donald_Rumsfeld"]
    assert all(r["photos"] == 4 and r["dim"] == 512 and 0.5 < r["mean_score"] <= 1 for r in rows)
    assert results[5].message == "dropped table scratch.people"


def test_dataset_file_named_like_its_schema(tmp_path: Path, small: Small) -> None:
    ds = lookalike.open(tmp_path / "face_search.duckdb")
    rows = ds.sql(
        f"""CREATE SCHEMA face_search;
            CREATE EXTERNAL TABLE face_search.faces OPTIONS (object_metadata = 'SIMPLE', uris = ['{small.photos}/*']);
            CREATE TABLE face_search.copy AS SELECT uri FROM face_search.faces;
            SELECT count(*) AS n FROM face_search.copy"""
    )[-1].to_pylist()
    assert rows == [{"n": 3}]


def test_same_person_threshold_option(demo: Demo) -> None:
    """A Lookalike option of VECTOR_SEARCH: a same_person column decided at the given cosine distance."""
    search = (
        f"SELECT base.uri AS uri, distance, same_person FROM VECTOR_SEARCH(TABLE face_search.face_embeddings, "
        f"'{EMB}', (SELECT * FROM face_search.face_embeddings WHERE uri LIKE '%Tony_Blair_0010%'), top_k => 4, "
        "distance_type => '{dist}', options => '{{\"same_person_threshold\": 0.5}}')"
    )
    rows = demo.rows(search.format(dist="COSINE"))
    assert [r["same_person"] for r in rows] == [r["distance"] <= 0.5 for r in rows]
    assert rows[0]["same_person"] and not rows[-1]["same_person"]
    euclid = demo.rows(search.format(dist="EUCLIDEAN"))  # the threshold is a cosine distance in any distance
    assert [r["same_person"] for r in euclid] == [r["same_person"] for r in rows]
    with pytest.raises(SqlError, match="same_person_threshold must be a cosine distance"):
        demo.sql(search.format(dist="COSINE").replace("0.5", "3"))
