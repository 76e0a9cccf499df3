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
- ``../shared/data/utkface_adults``: UTKFace adults in 8 groups (unlabelled, so false matches only; pairs closer
  than 0.30 are left out: UTKFace repeats people, and every such pair was checked by eye to be one person);
- ``../shared/data/lfw_color12``: colour photos of 12 LFW people (mostly white men);
- ``--extra GROUP=DIR``: any labelled set laid out ``DIR/<person>/<photo>`` (see README "Fairness" for the ones
  measured and where they come from).

And LFW's own verification protocol (pairs.txt) with LFW as the table: the true-match rate must not drop.

    python benchmarks/fairness.py --extra east_asian_women=/data/kpop --json results/fairness.json
    python benchmarks/fairness.py --repeat-sheets /tmp/repeats   # the UTKFace pairs left out, to look at
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from fair_data import SHARED, FaceSet, standard_sets
from lookalike.faces.registry import get_card
from lookalike.people.cluster import Nodes, agglomerate, neighbour_graph
from lookalike.people.decide import CONFIRM_FACES, person_verdicts
from lookalike.people.grouping import DEFAULT_MIN_FACES
from lookalike.search.calibration import (
    Calibration,
    calibrate,
    card_calibration,
    decide_array,
    grouping_thresholds,
)
from machine import print_banner

#: Unlabelled sets (UTKFace) repeat people: celebrities photographed many times. Every one of the 80 pairs of
#: UTKFace faces under this distance (all 8 groups) was checked by eye on contact sheets, and each is one person
#: twice (Samuel L. Jackson three times, Narendra Modi, Liam Neeson, Christie Brinkley, ...); none is two people.
#: Such pairs are left out of the false matches. Pairs above it still count, though some are one person too
#: (Denzel Washington at 0.327, Laz Alonso at 0.403): the unlabelled groups' FMRs stay upper bounds.
SAME_PERSON_BELOW = 0.30


def _rates(d: np.ndarray, same: np.ndarray | None, cal: Calibration) -> dict[str, float | int | None]:
    """FMR, uncertain share of different-person pairs, FNMR, for distances ``d`` decided under ``cal``."""
    return _tally(np.array(decide_array(d.reshape(1, -1), cal)[0], dtype=object), same)


def _tally(verdict: np.ndarray, same: np.ndarray | None) -> dict[str, float | int | None]:
    """FMR, uncertain share of different-person pairs, FNMR, for ``verdict`` (True / False / None per pair)."""
    imp = np.ones(len(verdict), bool) if same is None else ~same
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


def persons_of(vectors: np.ndarray, cal: Calibration) -> np.ndarray:
    """The persons a grouping run (``lookalike people cluster``, what ``lookalike index`` runs after a job) puts the
    faces in, as one label per face (-1: left unassigned): the product's own algorithm and thresholds."""
    pair = grouping_thresholds(cal)
    if pair is None or len(vectors) < 2:
        return np.full(len(vectors), -1, np.int64)
    a, b, _ = neighbour_graph(vectors, vectors, same=True)
    labels = agglomerate(Nodes.faces(vectors), a, b, pair[1], face_threshold=pair[0])
    sizes = np.bincount(labels, minlength=len(vectors))
    return np.where(sizes[labels] >= DEFAULT_MIN_FACES, labels, -1)


def person_rows(
    d: np.ndarray, queries: np.ndarray, rows: np.ndarray, labels: np.ndarray, cal: Calibration
) -> np.ndarray:
    """Verdicts on pairs (query face, row face) at distances ``d``, decided as a search row is when the query face
    is in the table (``lookalike.people.decide``): by the table's persons ``labels`` where both are in one."""
    base = decide_array(d.reshape(1, -1), cal)
    decided = person_verdicts(
        [[v] for v in base[0]],
        d.reshape(-1, 1),
        labels[queries],
        labels[rows].reshape(-1, 1),
        cal.card_threshold,
        confirm=len(labels) >= CONFIRM_FACES,
    )
    return np.array([r[0] for r in decided.same_person], dtype=object)


def pairs_of(fs: FaceSet) -> tuple[np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Distances and same-person flags (``None``: unlabelled) of every pair of faces, and the pairs' face numbers;
    in unlabelled sets pairs closer than :data:`SAME_PERSON_BELOW` (one person twice) are left out."""
    v = fs.vectors
    d = np.clip(1.0 - v @ v.T, 0.0, 2.0)
    iu = np.triu_indices(len(v), 1)
    dist = d[iu]
    if fs.person is None:
        keep = dist >= SAME_PERSON_BELOW
        return dist[keep], None, iu[0][keep], iu[1][keep]
    p = np.array(fs.person)
    return dist, (p[:, None] == p[None, :])[iu], iu[0], iu[1]


def search_rows(fs: FaceSet, k: int = 5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Distances, same-person flags, query and row face numbers of each photo's top-``k`` other photos (labelled
    sets only): the rows ``lookalike search`` shows for a photo of the table."""
    if fs.person is None:
        return None
    v = fs.vectors
    d = np.clip(1.0 - v @ v.T, 0.0, 2.0)
    np.fill_diagonal(d, np.inf)
    nn = np.argsort(d, axis=1)[:, :k]
    p = np.array(fs.person)
    queries = np.repeat(np.arange(len(v)), nn.shape[1])
    return np.take_along_axis(d, nn, 1).ravel(), (p[nn] == p[:, None]).ravel(), queries, nn.ravel()


def small_tables(
    fs: FaceSet, card: Calibration, draws: int, seed: int = 0, persons: bool = False
) -> dict[str, float | None] | None:
    """Rates over random small tables (8 photos of 3 people): too small to calibrate, so the card decides; with
    ``persons``, decided as ``lookalike`` decides once the table's faces are grouped into persons."""
    if fs.person is None:
        return None
    p = np.array(fs.person)
    people = sorted(set(fs.person))
    if len(people) < 3:
        return None
    rng = np.random.default_rng(seed)
    ds: list[np.ndarray] = []
    ss: list[np.ndarray] = []
    vs: list[np.ndarray] = []
    for _ in range(draws):
        chosen = rng.choice(people, 3, replace=False)
        rows = np.flatnonzero(np.isin(p, chosen))
        if len(rows) < 8:
            continue
        rows = rng.choice(rows, 8, replace=False)
        sub = FaceSet(fs.name, fs.group, [fs.files[i] for i in rows], [fs.person[i] for i in rows], fs.vectors[rows])
        d, s, first, second = pairs_of(sub)
        ds.append(d)
        ss.append(s if s is not None else np.zeros(len(d), bool))
        if persons:
            vs.append(person_rows(d, first, second, persons_of(sub.vectors, card), card))
    if not ds:
        return None
    if persons:
        r = _tally(np.concatenate(vs), np.concatenate(ss))
    else:
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
    calibration = _rates(d, pairs.same, cal)
    card = _rates(d, pairs.same, card_calibration(card_threshold, None))
    labels = persons_of(vecs, cal)
    first = np.array([index[n] for n in pairs.left])
    second = np.array([index[n] for n in pairs.right])
    default = _tally(person_rows(d, first, second, labels, cal), pairs.same)
    return {
        "table_faces": len(vecs),
        "threshold": cal.threshold,
        "method": cal.method,  # type: ignore[dict-item]
        "tar_default": 1.0 - float(default["fnmr"]),  # type: ignore[arg-type]
        "tar_calibration": 1.0 - float(calibration["fnmr"]),  # type: ignore[arg-type]
        "tar_card": 1.0 - float(card["fnmr"]),  # type: ignore[arg-type]
        "far_default": float(default["fmr"]),  # type: ignore[arg-type]
        "far_calibration": float(calibration["fmr"]),  # type: ignore[arg-type]
        "far_card": float(card["fmr"]),  # type: ignore[arg-type]
        "persons": len(np.unique(labels[labels >= 0])),
    }


def _pct(v: object) -> str:
    return "" if v is None else f"{100 * float(v):.2f} %"  # type: ignore[arg-type]


def repeat_sheets(sets: list[FaceSet], shared: Path, out: Path) -> int:
    """Write contact sheets (PNG, ten pairs each) of every unlabelled-set pair closer than
    :data:`SAME_PERSON_BELOW`, to look at; returns how many pairs. The evidence behind leaving them out."""
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    pairs = []
    for fs in sets:
        if fs.person is not None:
            continue
        v = fs.vectors
        d = np.clip(1.0 - v @ v.T, 0.0, 2.0)
        a, b = np.triu_indices(len(v), 1)
        close = np.flatnonzero(d[a, b] < SAME_PERSON_BELOW)
        root = shared / "utkface_adults" / fs.group
        pairs += [(d[a[i], b[i]], root / fs.files[a[i]], root / fs.files[b[i]]) for i in close]
    side = 115
    for start in range(0, len(pairs), 10):
        chunk = pairs[start : start + 10]
        sheet = Image.new("RGB", (5 * 2 * (side + 5), 2 * (side + 15)), "white")
        for j, (_, left, right) in enumerate(chunk):
            x, y = (j % 5) * 2 * (side + 5), (j // 5) * (side + 15)
            for k, path in enumerate((left, right)):
                sheet.paste(Image.open(path).convert("RGB").resize((side, side)), (x + k * (side + 2), y))
        sheet.save(out / f"repeats-{start // 10:02d}.png")
    with open(out / "repeats.txt", "w") as fh:
        for dist, left, right in pairs:
            fh.write(f"{dist:.3f}\t{left}\t{right}\n")
    return len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="fr-feature")
    ap.add_argument("--extra", nargs="*", default=[], help="labelled sets as GROUP=DIR (DIR/<person>/<photo>)")
    ap.add_argument("--exclude-people", nargs="*", default=[], help="person folders to leave out (bad labels)")
    ap.add_argument("--small-draws", type=int, default=300, help="random 8-photo tables per labelled set")
    ap.add_argument("--json", default=None)
    ap.add_argument(
        "--repeat-sheets",
        default=None,
        metavar="DIR",
        help=f"write contact sheets of the unlabelled pairs under {SAME_PERSON_BELOW} (left out) and stop",
    )
    args = ap.parse_args()
    machine = print_banner()
    card = get_card(args.model)
    card_only = card_calibration(card.threshold, None)
    fallback = card_calibration(card.threshold, card.safe_threshold)
    if args.repeat_sheets:
        count = repeat_sheets(standard_sets(card.name), Path(SHARED), Path(args.repeat_sheets))
        print(f"{count} pairs under {SAME_PERSON_BELOW} in {args.repeat_sheets}")
        return
    rows = []
    for fs in standard_sets(card.name, extra=args.extra):
        if fs.person is not None and args.exclude_people:
            keep = [i for i, p in enumerate(fs.person) if p not in set(args.exclude_people)]
            fs = FaceSet(fs.name, fs.group, [fs.files[i] for i in keep], [fs.person[i] for i in keep], fs.vectors[keep])
        cal = calibrate(fs.vectors, card.threshold, card.safe_threshold)
        d, same, first, second = pairs_of(fs)
        labels = persons_of(fs.vectors, cal)
        row: dict[str, object] = {
            "set": fs.name,
            "group": fs.group,
            "faces": len(fs.files),
            "people": len(set(fs.person)) if fs.person is not None else None,
            "no_face": fs.missed,
            "calibration": cal.to_dict(),
            "pairs_card": _rates(d, same, card_only),
            "pairs_calibration": _rates(d, same, cal),
            "pairs_default": _tally(person_rows(d, first, second, labels, cal), same),
            "persons": len(np.unique(labels[labels >= 0])),
        }
        found = search_rows(fs)
        if found is not None:
            dist, flags, queries, hits = found
            row["search_card"] = _rates(dist, flags, card_only)
            row["search_calibration"] = _rates(dist, flags, cal)
            row["search_default"] = _tally(person_rows(dist, queries, hits, labels, cal), flags)
        row["small_tables_calibration"] = small_tables(fs, fallback, args.small_draws)
        row["small_tables_default"] = small_tables(fs, fallback, args.small_draws, persons=True)
        rows.append(row)
        pc, pl, pd = row["pairs_card"], row["pairs_calibration"], row["pairs_default"]
        print(
            f"{fs.name:34s} {fs.group:22s} {len(fs.files):5d} faces  {cal.summary():44s} {row['persons']} persons; "
            f"card -> calibration -> with persons: FMR {_pct(pc['fmr'])} -> {_pct(pl['fmr'])} -> {_pct(pd['fmr'])} "  # type: ignore[index]
            f"(uncertain {_pct(pd['impostor_uncertain'])})"  # type: ignore[index]
            + (
                f"  FNMR {_pct(pc['fnmr'])} -> {_pct(pl['fnmr'])} -> {_pct(pd['fnmr'])}"
                if pd["fnmr"] is not None
                else ""
            )  # type: ignore[index]
        )
        if "search_default" in row:
            sc, sl, sd = row["search_card"], row["search_calibration"], row["search_default"]
            print(
                f"{'':34s} top-5 rows, card -> calibration -> with persons: other people marked "
                f"{_pct(sc['fmr'])} -> {_pct(sl['fmr'])} -> {_pct(sd['fmr'])}, "  # type: ignore[index]
                f"true matches unmarked {_pct(sc['fnmr'])} -> {_pct(sl['fnmr'])} -> {_pct(sd['fnmr'])}"  # type: ignore[index]
            )
        for key, what in (("small_tables_calibration", "card fallback"), ("small_tables_default", "with persons")):
            small = row[key]
            if small:
                print(
                    f"{'':34s} 8-photo tables ({what}): FMR {_pct(small['fmr'])}, "  # type: ignore[index]
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
            f"card -> calibration -> with its {lfw['persons']} persons: TAR {_pct(lfw['tar_card'])} -> "  # type: ignore[index]
            f"{_pct(lfw['tar_calibration'])} -> {_pct(lfw['tar_default'])}, FAR {_pct(lfw['far_card'])} -> "  # type: ignore[index]
            f"{_pct(lfw['far_calibration'])} -> {_pct(lfw['far_default'])}"  # type: ignore[index]
        )
    if args.json:
        payload = {"machine": machine, "model": card.name, "sets": rows, "summary": summary}
        Path(args.json).write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
