"""Same-person decisions per demographic group: false-match and false-non-match rates, as NIST FRVT reports them.

For each set of photos (a *group*), the set is indexed as a table of its own, the table calibrates itself (see
``lookalike.search.calibration``), and every pair of faces in it is decided twice:

- **card**: the model card's LFW threshold alone (what Lookalike did before per-table calibration);
- **default**: the table's calibration: ``same_person`` is ``True``, ``False``, or ``None`` (uncertain).

Per group it prints the false-match rate (different-person pairs marked the same person), the share of them
left uncertain, the false-non-match rate (same-person pairs not marked; labelled sets only), and the same
three rates over the rows of a top-5 search (each photo searched against the rest: what ``lookalike search``
shows). Then the ratio of the largest to the smallest group FMR. Labelled sets are also cut into small tables
(8 photos of 3 people, as a user's first try) that are too small to calibrate, to measure the fallback.

Sets:
- ``../shared/data/utkface_adults``: UTKFace adults in 8 groups (unlabelled, each photo a different person, so
  false matches only; pairs closer than 0.05 are dropped as repeats of one photo);
- ``../shared/data/lfw_color12``: colour photos of 12 LFW people (mostly white men);
- ``--extra GROUP=DIR``: any labelled set laid out ``DIR/<person>/<photo>`` (see README "Fairness" for the ones
  measured and where they come from).

And LFW's own verification protocol (pairs.txt) with LFW as the table: the true-match rate must not drop.

    python benchmarks/fairness.py --extra east_asian_women=/data/kpop --json results/fairness.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fair_data import FaceSet, standard_sets
from lookalike.faces.registry import get_card
from lookalike.search.calibration import Calibration, calibrate, card_calibration, decide_array
from machine import print_banner

NEAR_DUPLICATE = 0.05


def _rates(d: np.ndarray, same: np.ndarray | None, cal: Calibration) -> dict[str, float | int | None]:
    """FMR, uncertain share of different-person pairs, FNMR, for distances ``d`` decided under ``cal``."""
    verdict = np.array(decide_array(d.reshape(1, -1), cal)[0], dtype=object)
    imp = np.ones(len(d), bool) if same is None else ~same
    out: dict[str, float | int | None] = {
        "impostor_pairs": int(imp.sum()),
        "fmr": float(np.mean(verdict[imp] == True)) if imp.any() else None,  # noqa: E712 (object array)
        "impostor_uncertain": float(np.mean(verdict[imp] == None)) if imp.any() else None,  # noqa: E711
        "genuine_pairs": 0,
        "fnmr": None,
    }
    if same is not None and same.any():
        out["genuine_pairs"] = int(same.sum())
        out["fnmr"] = float(np.mean(verdict[same] != True))  # noqa: E712
    return out


def pairs_of(fs: FaceSet) -> tuple[np.ndarray, np.ndarray | None]:
    v = fs.vectors
    d = np.clip(1.0 - v @ v.T, 0.0, 2.0)
    iu = np.triu_indices(len(v), 1)
    dist = d[iu]
    if fs.person is None:
        return dist[dist >= NEAR_DUPLICATE], None
    p = np.array(fs.person)
    return dist, (p[:, None] == p[None, :])[iu]


def search_rows(fs: FaceSet, k: int = 5) -> tuple[np.ndarray, np.ndarray] | None:
    """Distances and same-person flags of each photo's top-``k`` other photos (labelled sets only)."""
    if fs.person is None:
        return None
    v = fs.vectors
    d = np.clip(1.0 - v @ v.T, 0.0, 2.0)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :k]
    p = np.array(fs.person)
    return np.take_along_axis(d, nn, 1).ravel(), (p[nn] == p[:, None]).ravel()


def small_tables(fs: FaceSet, card: Calibration, draws: int, seed: int = 0) -> dict[str, float | None] | None:
    """Rates over random small tables (8 photos of 3 people): too small to calibrate, so the card decides."""
    if fs.person is None:
        return None
    p = np.array(fs.person)
    people = sorted(set(fs.person))
    if len(people) < 3:
        return None
    rng = np.random.default_rng(seed)
    ds: list[np.ndarray] = []
    ss: list[np.ndarray] = []
    for _ in range(draws):
        chosen = rng.choice(people, 3, replace=False)
        rows = np.flatnonzero(np.isin(p, chosen))
        if len(rows) < 8:
            continue
        rows = rng.choice(rows, 8, replace=False)
        sub = FaceSet(fs.name, fs.group, [fs.files[i] for i in rows], [fs.person[i] for i in rows], fs.vectors[rows])
        d, s = pairs_of(sub)
        ds.append(d)
        ss.append(s if s is not None else np.zeros(len(d), bool))
    if not ds:
        return None
    r = _rates(np.concatenate(ds), np.concatenate(ss), card)
    return {"fmr": r["fmr"], "impostor_uncertain": r["impostor_uncertain"], "fnmr": r["fnmr"]}  # type: ignore[dict-item]


def lfw_protocol(model: str, card_threshold: float, safe: float | None) -> dict[str, float] | None:
    """LFW pairs.txt decided with the LFW table's own calibration (all 13,233 images as the table)."""
    from lfw_common import CACHE, DEFAULT_DATA, read_pairs

    cache = CACHE / f"emb-{model}.npz"
    pairs_file = DEFAULT_DATA / "lfw_protocols" / "pairs.txt"
    if not cache.exists() or not pairs_file.exists():
        return None
    with np.load(cache) as z:
        names = [str(n) for n in z["names"]]
        vecs = z["vectors"].astype(np.float32)
    index = {n: i for i, n in enumerate(names)}
    pairs = read_pairs(pairs_file)
    if not all(n in index for n in pairs.left + pairs.right):
        return None
    cal = calibrate(vecs, card_threshold, safe)
    left = vecs[[index[n] for n in pairs.left]]
    right = vecs[[index[n] for n in pairs.right]]
    d = np.clip(1.0 - np.sum(left * right, axis=1), 0.0, 2.0)
    default = _rates(d, pairs.same, cal)
    card = _rates(d, pairs.same, card_calibration(card_threshold, None))
    return {
        "table_faces": len(vecs),
        "threshold": cal.threshold,
        "method": cal.method,  # type: ignore[dict-item]
        "tar_default": 1.0 - float(default["fnmr"]),  # type: ignore[arg-type]
        "tar_card": 1.0 - float(card["fnmr"]),  # type: ignore[arg-type]
        "far_default": float(default["fmr"]),  # type: ignore[arg-type]
        "far_card": float(card["fmr"]),  # type: ignore[arg-type]
    }


def _pct(v: object) -> str:
    return "" if v is None else f"{100 * float(v):.2f} %"  # type: ignore[arg-type]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="fr-feature")
    ap.add_argument("--extra", nargs="*", default=[], help="labelled sets as GROUP=DIR (DIR/<person>/<photo>)")
    ap.add_argument("--exclude-people", nargs="*", default=[], help="person folders to leave out (bad labels)")
    ap.add_argument("--small-draws", type=int, default=300, help="random 8-photo tables per labelled set")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    machine = print_banner()
    card = get_card(args.model)
    card_only = card_calibration(card.threshold, None)
    fallback = card_calibration(card.threshold, card.safe_threshold)
    rows = []
    for fs in standard_sets(card.name, extra=args.extra):
        if fs.person is not None and args.exclude_people:
            keep = [i for i, p in enumerate(fs.person) if p not in set(args.exclude_people)]
            fs = FaceSet(fs.name, fs.group, [fs.files[i] for i in keep], [fs.person[i] for i in keep], fs.vectors[keep])
        cal = calibrate(fs.vectors, card.threshold, card.safe_threshold)
        d, same = pairs_of(fs)
        row: dict[str, object] = {
            "set": fs.name,
            "group": fs.group,
            "faces": len(fs.files),
            "people": len(set(fs.person)) if fs.person is not None else None,
            "no_face": fs.missed,
            "calibration": cal.to_dict(),
            "pairs_card": _rates(d, same, card_only),
            "pairs_default": _rates(d, same, cal),
        }
        found = search_rows(fs)
        if found is not None:
            row["search_card"] = _rates(found[0], found[1], card_only)
            row["search_default"] = _rates(found[0], found[1], cal)
        row["small_tables_default"] = small_tables(fs, fallback, args.small_draws)
        rows.append(row)
        pc, pd = row["pairs_card"], row["pairs_default"]
        print(
            f"{fs.name:34s} {fs.group:22s} {len(fs.files):5d} faces  {cal.summary():44s} "
            f"FMR {_pct(pc['fmr']):>8} -> {_pct(pd['fmr']):>8} (uncertain {_pct(pd['impostor_uncertain'])})"  # type: ignore[index]
            + (f"  FNMR {_pct(pc['fnmr'])} -> {_pct(pd['fnmr'])}" if pd["fnmr"] is not None else "")  # type: ignore[index]
        )
        if "search_default" in row:
            sc, sd = row["search_card"], row["search_default"]
            print(
                f"{'':34s} top-5 rows: other people marked {_pct(sc['fmr'])} -> {_pct(sd['fmr'])}, "  # type: ignore[index]
                f"true matches unmarked {_pct(sc['fnmr'])} -> {_pct(sd['fnmr'])}"  # type: ignore[index]
            )
        small = row["small_tables_default"]
        if small:
            print(
                f"{'':34s} 8-photo tables (card fallback): FMR {_pct(small['fmr'])}, "  # type: ignore[index]
                f"uncertain {_pct(small['impostor_uncertain'])}, FNMR {_pct(small['fnmr'])}"  # type: ignore[index]
            )
    fmrs = {r["group"]: r["pairs_default"]["fmr"] for r in rows if r["pairs_default"]["fmr"] is not None}  # type: ignore[index]
    fmrs_card = {r["group"]: r["pairs_card"]["fmr"] for r in rows if r["pairs_card"]["fmr"] is not None}  # type: ignore[index]

    def ratio(values: dict[object, object]) -> float | None:
        """Largest over smallest non-zero group FMR (a group with no false match at all has no ratio)."""
        vals = [float(v) for v in values.values() if v]  # type: ignore[arg-type]
        return max(vals) / min(vals) if vals else None

    summary = {
        "max_fmr_default": max(fmrs.values()) if fmrs else None,  # type: ignore[type-var]
        "max_fmr_card": max(fmrs_card.values()) if fmrs_card else None,  # type: ignore[type-var]
        "fmr_ratio_default": ratio(fmrs),  # type: ignore[arg-type]
        "fmr_ratio_card": ratio(fmrs_card),  # type: ignore[arg-type]
        "lfw": lfw_protocol(card.name, card.threshold, card.safe_threshold),
    }
    print(
        f"largest group FMR: card {_pct(summary['max_fmr_card'])}, default {_pct(summary['max_fmr_default'])}; "
        f"largest/smallest: card {summary['fmr_ratio_card'] or 0:.1f}x, "
        f"default {summary['fmr_ratio_default'] or 0:.1f}x"
    )
    if summary["lfw"]:
        lfw = summary["lfw"]
        print(
            f"LFW pairs.txt (LFW as the table, {lfw['table_faces']} faces, {lfw['method']} {lfw['threshold']:.3f}): "  # type: ignore[index]
            f"TAR {_pct(lfw['tar_card'])} -> {_pct(lfw['tar_default'])}, FAR {_pct(lfw['far_card'])} -> "  # type: ignore[index]
            f"{_pct(lfw['far_default'])}"  # type: ignore[index]
        )
    if args.json:
        payload = {"machine": machine, "model": card.name, "sets": rows, "summary": summary}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
