"""A table's same-person calibration through the whole job: computed by indexing, stored in the dataset,
recomputed when the table changes, shown by ``lookalike tables``, and overridden per query (API and CLI)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

import lookalike
from lookalike.cli import main

DATA = Path(__file__).resolve().parents[1] / "data"


def test_index_calibrates_the_table_and_search_decides_with_it(tmp_path: Path, photos: Path) -> None:
    ds = lookalike.open(tmp_path / "cal.duckdb")
    # without persons (cluster=False) the calibration alone decides; persons are tested in test_person_decisions.py
    small = ds.index(str(photos / "Tony_Blair"), cluster=False)  # 3 faces: too few to calibrate, the card's band
    assert small.calibration is not None and small.calibration.method == "card"
    assert (small.calibration.threshold, small.calibration.uncertain_above) == (0.48, 0.673)
    report = ds.index(str(photos), cluster=False)  # 36 faces of 12 look-alike politicians: it calibrates itself
    cal = report.calibration
    assert cal is not None and cal.method == "dataset" and cal.faces == 36 and cal.pairs == 36 * 35 // 2
    assert 0.3 <= cal.threshold <= 0.673
    info = ds.table("faces")
    assert info.calibration == cal and info.calibrated_version == info.version and info.threshold == cal.threshold
    (stats,) = ds.tables()
    assert stats["calibration"]["method"] == "dataset"  # type: ignore[index]

    result = ds.search(str(DATA / "queries/Tony_Blair_0010.jpg"), top_k=5)
    assert result.calibration == cal
    for hit in result.hits:
        expected = True if hit.distance <= cal.threshold else (None if hit.distance <= 0.673 else False)
        assert hit.same_person is expected
        assert (hit.same_person_reason is None) == (hit.same_person is not None)
    assert result.hits[0].same_person is True and Path(result.hits[0].uri).parent.name == "Tony_Blair"

    # a threshold given with the query overrides the calibration, both ways
    loose = ds.search(str(DATA / "queries/Tony_Blair_0010.jpg"), top_k=5, threshold=1.5)
    assert all(h.same_person is True for h in loose.hits) and loose.calibration.method == "user"  # type: ignore[union-attr]
    strict = ds.search(str(DATA / "queries/Tony_Blair_0010.jpg"), top_k=5, threshold=0.05)
    assert all(h.same_person is False for h in strict.hits)


def test_removing_photos_recalibrates(tmp_path: Path, photos: Path) -> None:
    ds = lookalike.open(tmp_path / "cal.duckdb")
    ds.index(str(photos))
    for person in sorted(p.name for p in photos.iterdir())[:9]:
        shutil.rmtree(photos / person)
    report = ds.index(str(photos))
    assert report.removed == 27
    assert report.calibration is not None and report.calibration.method == "card"  # 9 faces left
    assert ds.table("faces").calibration == report.calibration


def test_verify_uses_the_table_or_the_cards_band_or_a_threshold(tmp_path: Path, photos: Path) -> None:
    ds = lookalike.open(tmp_path / "cal.duckdb")
    a, b = str(DATA / "gallery/Hugo_Chavez/Hugo_Chavez_0001.jpg"), str(DATA / "queries/Hugo_Chavez_0010.jpg")
    card = ds.verify(a, b)
    assert card.calibration is not None and card.calibration.method == "card"
    assert card.same_person is (True if card.distance <= 0.48 else None)
    assert ds.verify(a, b, threshold=0.01).same_person is False
    ds.index(str(photos))
    in_table = ds.verify(a, b, table="faces")
    assert in_table.calibration == ds.table("faces").calibration


def test_cli_shows_the_calibration_and_takes_a_threshold(tmp_path: Path, photos: Path) -> None:
    dataset = str(tmp_path / "cli.duckdb")
    runner = CliRunner()
    assert runner.invoke(main, ["index", str(photos), "--dataset", dataset]).exit_code == 0
    tables = runner.invoke(main, ["tables", "--dataset", dataset])
    assert tables.exit_code == 0 and "dataset: 0." in tables.output and "pairs of 36 faces" in tables.output
    out = runner.invoke(
        main,
        [
            "search",
            str(DATA / "queries/Serena_Williams_0010.jpg"),
            "--dataset",
            dataset,
            "--json",
            "--threshold",
            "0.9",
        ],
    )
    assert out.exit_code == 0, out.output
    rows = json.loads(out.output)
    assert {r["same_person"] for r in rows} == {True} and all(r["same_person_reason"] is None for r in rows)
    bad = runner.invoke(
        main, ["search", str(DATA / "queries/Serena_Williams_0010.jpg"), "--dataset", dataset, "--threshold", "3"]
    )
    assert bad.exit_code != 0 and "threshold" in bad.output.lower()


def test_a_schema_2_dataset_migrates_and_calibrates_on_its_next_index(tmp_path: Path, photos: Path) -> None:
    import duckdb

    path = tmp_path / "old.duckdb"
    lookalike.open(path).index(str(photos), cluster=False)  # (persons came later than schema 2 too)
    with duckdb.connect(str(path)) as con:  # make it look like a dataset written before calibrations existed
        con.execute("ALTER TABLE lookalike_tables DROP COLUMN calibration")
        con.execute("ALTER TABLE lookalike_tables DROP COLUMN calibrated_version")
        con.execute("UPDATE lookalike_meta SET value = '2' WHERE key = 'schema_version'")
    ds = lookalike.open(path)
    before = ds.search(str(DATA / "queries/Tony_Blair_0010.jpg"), top_k=1)
    assert before.calibration is not None and before.calibration.method == "card"
    assert "not calibrated yet" in before.calibration.note and before.hits[0].same_person is True
    report = ds.index(str(photos))
    assert report.unchanged == 36 and report.calibration is not None and report.calibration.method == "dataset"
