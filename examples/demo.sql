-- The Google Cloud face-search demo (BigQuery + Vertex AI), run locally by Lookalike.
-- Only names and paths differ from the demo: the model is a local face model (ENDPOINT = 'default'),
-- and the "bucket" is the sample photos bundled in tests/data. Run it from the repository root:
--
--   lookalike sql -f examples/demo.sql --dataset demo.duckdb
--   lookalike sql -f examples/demo.sql --dataset demo.duckdb --format json   # the search rows as JSON

-- 1. A dataset.
CREATE SCHEMA IF NOT EXISTS face_search;

-- 2. A model. In the demo, ENDPOINT = 'multimodalembedding@001' (Vertex AI); here, a face model on this machine.
CREATE OR REPLACE MODEL `face_search.face-search_model`
  REMOTE WITH CONNECTION `us.face_conn`
  OPTIONS (ENDPOINT = 'default');

-- 3. An object table over the photos (in the demo: uris = ['gs://<bucket>/faces/*']).
CREATE OR REPLACE EXTERNAL TABLE `face_search.faces`
  WITH CONNECTION `us.face_conn`
  OPTIONS (
    object_metadata = 'SIMPLE',
    uris = ['tests/data/gallery/*', 'tests/data/queries/*']
  );

-- 4. Embeddings: one row per detected face.
CREATE OR REPLACE TABLE `face_search.face_embeddings` AS
SELECT *
FROM ML.GENERATE_EMBEDDING(
  MODEL `face_search.face-search_model`,
  (SELECT * FROM `face_search.faces` LIMIT 100),
  STRUCT(TRUE AS flatten_json_output, 512 AS output_dimensionality)
);

-- 5. Search: the faces most similar to the face in Tony_Blair_0010.jpg.
SELECT base.uri AS image_link, distance
FROM VECTOR_SEARCH(
  TABLE `face_search.face_embeddings`, 'ml_generate_embedding_result',
  (
    SELECT * FROM ML.GENERATE_EMBEDDING(
      MODEL `face_search.face-search_model`,
      (SELECT * FROM `face_search.faces` WHERE uri LIKE '%Tony_Blair_0010%' LIMIT 1),
      STRUCT(TRUE AS flatten_json_output, 512 AS output_dimensionality)
    )
  ),
  'ml_generate_embedding_result',
  top_k => 5, distance_type => 'COSINE',
  options => '{"use_brute_force":true}'
)
ORDER BY distance;
