"""BigQuery-dialect SQL over a Lookalike dataset: the Google Cloud face-search demo, run locally.

::

    import lookalike
    ds = lookalike.open("faces.duckdb")
    for result in ds.sql(open("examples/demo.sql").read()):
        print(result.message)
    rows = result.to_pylist()          # the last statement's rows

Statement forms (see ``docs/sql.md``):

- ``CREATE [OR REPLACE] MODEL name [REMOTE WITH CONNECTION c] OPTIONS(ENDPOINT = 'default')`` (models.py)
- ``CREATE [OR REPLACE] EXTERNAL TABLE name [WITH CONNECTION c] OPTIONS(object_metadata = 'SIMPLE',
  uris = [...], max_staleness = INTERVAL ..., metadata_cache_mode = ...)`` and
  ``CALL BQ.REFRESH_EXTERNAL_METADATA_CACHE('name')`` (objects.py)
- ``ML.GENERATE_EMBEDDING(MODEL m, TABLE t | (query), STRUCT(...))`` (ml.py)
- ``VECTOR_SEARCH(...)``, ``CREATE / DROP VECTOR INDEX`` (vector.py)
- the read-only people views ``lookalike_people`` and ``lookalike_person_faces`` (people.py)
- everything else through sqlglot's BigQuery -> DuckDB translation (queries.py)

Modules: ``parse`` (split a script, parse statements, positions), ``values`` (constants in OPTIONS and
STRUCTs), ``names`` (BigQuery names -> DuckDB schemas), ``context`` (what handlers work with), ``registry``
(statement handlers and table functions), ``rewrite`` (table functions inside any query), ``run`` (the
script runner), ``result`` (results and their JSON / CSV / terminal forms).
"""

from __future__ import annotations

from lookalike.sql.result import SqlResult, to_csv, to_json, to_text
from lookalike.sql.run import run_script

__all__ = ["SqlResult", "run_script", "to_csv", "to_json", "to_text"]
