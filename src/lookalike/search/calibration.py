"""Same-person decisions that hold for the population in a table, not only for LFW's.

A model card's threshold was set on LFW, where 0.1 % of different-person pairs fall under it. Different-person
distances move with the population: their median is 0.98 for LFW people, 0.90 for UTKFace's Black and Indian
women, 0.82 for K-pop idols; same-person distances stay low. So one fixed threshold accepts 0.5 % of different
people for some groups and 13 % for others. A table's *calibration* fixes the decision for its own faces.

How a table is calibrated (``method``):

- ``dataset``: from the table's own faces. Most pairs of faces in a gallery are different people, so the bulk of
  the pairwise distance distribution is the different-person distribution. Its location (the median of the
  distances above :data:`IMPOSTOR_FLOOR`, so that same-person pairs below it don't pull it) and its spread
  (measured above that median only, where same-person pairs never reach) are robust to a good share of
  same-person pairs. The threshold sits :data:`SHIFT` spreads below that location: the same place the card's
  threshold sits for LFW people (fr-feature: 0.673 = 0.992 - 3.34 x 0.095, LFW's different-person location and
  spread). On UTKFace's eight groups this keeps every group's false-match rate within 0.1-0.3 % (card:
  0.5-4 %). It is never looser than the card's threshold.
- ``card``: the table is too small, or its distances don't look like a gallery of different people (too few
  faces, too few people), so nothing can be learnt from it. Distances up to the card's ``safe_threshold``
  (where even the most look-alike population measured stays near 0.3 % false matches) are the same person;
  distances between that and the card's threshold get ``same_person = None``: uncertain, not a guess.
- ``user``: a threshold the user gave (CLI ``--threshold``, API ``threshold=``, SQL option); it is used as is.

:func:`decide` turns a distance into ``True`` / ``False`` / ``None`` for a calibration, and
:func:`reason` says why a ``None`` is uncertain.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

from lookalike.search.distances import Distance, threshold_for

CalibrationMethod = Literal["dataset", "card", "user", "uncalibrated"]

#: Different-person distances of any population measured sit well above this (cosine distance); the mode of the
#: different-person distribution is looked for above it.
IMPOSTOR_FLOOR = 0.6
#: The threshold sits this many spreads below the mode of the different-person distances (LFW people: 3.33).
SHIFT = 3.34
#: A calibrated threshold is never below this (below it, true matches of every set measured would be lost).
MIN_THRESHOLD = 0.30
#: Fewest faces a table needs before it calibrates itself.
MIN_FACES = 30
#: Fewest different-person-looking pairs (above the mode) the estimate needs.
MIN_UPPER_PAIRS = 200
#: Largest share of pairs under the card's threshold (same-person pairs and the closest different people) that
#: still looks like a gallery of many people; above it the table holds too few people to learn from.
MAX_LOW_SHARE = 0.25
#: Faces sampled for the estimate on big tables (this many squared / 2 pairs).
SAMPLE_FACES = 3000


@dataclass(frozen=True, slots=True)
class Calibration:
    """The same-person decision in force for a table.

    ``threshold``: distances at or below it are the same person. ``uncertain_above``: distances above
    ``threshold`` and at or below this get ``None`` (uncertain); above it, different people. Both are cosine
    distances. ``faces`` / ``pairs``: how much of the table the estimate rests on (0 when not from the table).
    """

    method: CalibrationMethod
    threshold: float
    uncertain_above: float
    card_threshold: float
    faces: int = 0
    pairs: int = 0
    mode: float | None = None
    spread: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str | None) -> Calibration | None:
        if not text:
            return None
        data = json.loads(text)
        return cls(**data)

    def summary(self) -> str:
        """One line for ``lookalike tables`` and ``lookalike models``."""
        if self.method == "dataset":
            return f"dataset: {self.threshold:.3f} from {self.pairs:,} pairs of {self.faces:,} faces"
        if self.method == "user":
            return f"user: {self.threshold:.3f}"
        if self.method == "uncalibrated":
            return "not calibrated: same_person is null (pass a threshold)"
        band = f", uncertain up to {self.uncertain_above:.3f}" if self.uncertain_above > self.threshold else ""
        return f"card: {self.threshold:.3f}{band}"


def uncalibrated(model: str) -> Calibration:
    """The decision for a model nobody calibrated: every distance uncertain (``same_person`` null)."""
    return Calibration(
        method="uncalibrated",
        threshold=-1.0,
        uncertain_above=4.0,
        card_threshold=1.0,
        note=f"model {model} is not calibrated",
    )


def card_calibration(card_threshold: float, safe_threshold: float | None, note: str = "") -> Calibration:
    """The fallback decision: sure up to the card's safe threshold, uncertain up to its LFW threshold."""
    safe = card_threshold if safe_threshold is None else min(safe_threshold, card_threshold)
    return Calibration(
        method="card", threshold=safe, uncertain_above=card_threshold, card_threshold=card_threshold, note=note
    )


def user_calibration(threshold: float, card_threshold: float) -> Calibration:
    """A user's own threshold, used as it is."""
    if not 0.0 <= threshold <= 2.0:
        from lookalike.errors import InvalidArgument

        raise InvalidArgument(f"threshold must be a cosine distance between 0 and 2, got {threshold}")
    return Calibration(
        method="user", threshold=threshold, uncertain_above=threshold, card_threshold=card_threshold, note="user"
    )


def pair_distances(vectors: np.ndarray, sample: int = SAMPLE_FACES, seed: int = 0) -> np.ndarray:
    """Cosine distances of all pairs among (a seeded sample of at most ``sample``) unit ``vectors``."""
    x = np.asarray(vectors, dtype=np.float32)
    if len(x) > sample:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), sample, replace=False))]
    sims = x @ x.T
    iu = np.triu_indices(len(x), 1)
    return np.clip(1.0 - sims[iu], 0.0, 2.0)


def impostor_mode_and_spread(distances: np.ndarray) -> tuple[float, float] | None:
    """Location ("mode") and upper-side spread of the different-person distances.

    The location is the median of the distances above :data:`IMPOSTOR_FLOOR` (more stable than a histogram peak
    on a few thousand pairs); the spread is the median distance above it divided by 0.6745 (a normal's scale
    from one side). ``None`` when there are too few pairs above the floor to say.
    """
    upper = distances[distances >= IMPOSTOR_FLOOR]
    if len(upper) < MIN_UPPER_PAIRS:
        return None
    mode = float(np.median(upper))
    above = upper[upper > mode] - mode
    if len(above) < MIN_UPPER_PAIRS // 2:
        return None
    return mode, float(np.median(above) / 0.6745)


def calibrate(vectors: np.ndarray, card_threshold: float, safe_threshold: float | None = None) -> Calibration:
    """The calibration for a table whose face embeddings are ``vectors`` (see the module docstring)."""
    n = len(vectors)
    if n < MIN_FACES:
        return card_calibration(
            card_threshold, safe_threshold, note=f"{n} faces: too few to calibrate (needs {MIN_FACES})"
        )
    dist = pair_distances(vectors)
    est = impostor_mode_and_spread(dist)
    if est is None:
        return card_calibration(
            card_threshold, safe_threshold, note=f"{n} faces: too few different-person pairs to calibrate"
        )
    mode, spread = est
    threshold = mode - SHIFT * spread
    low_share = float(np.mean(dist <= card_threshold))  # same-person pairs, and the closest different people
    if low_share > MAX_LOW_SHARE:
        return card_calibration(
            card_threshold,
            safe_threshold,
            note=f"{low_share:.0%} of pairs look like the same person: too few people to calibrate",
        )
    threshold = float(min(card_threshold, max(MIN_THRESHOLD, threshold)))
    return Calibration(
        method="dataset",
        threshold=threshold,
        uncertain_above=card_threshold,
        card_threshold=card_threshold,
        faces=min(n, SAMPLE_FACES),
        pairs=len(dist),
        mode=mode,
        spread=spread,
        note=f"mode {mode:.3f} - {SHIFT} x spread {spread:.3f}",
    )


def decide(distance: float, cal: Calibration) -> bool | None:
    """``True`` (same person), ``False`` (different people) or ``None`` (uncertain) for a cosine distance."""
    if distance <= cal.threshold:
        return True
    if distance > cal.uncertain_above:
        return False
    return None


def decide_array(distances: np.ndarray, cal: Calibration, distance: Distance = "cosine") -> list[list[bool | None]]:
    """:func:`decide` for a ``(queries, k)`` array of distances of kind ``distance`` (unit vectors), as nested
    lists; the calibration's cosine thresholds are converted with :func:`threshold_for`."""
    d = np.atleast_2d(np.asarray(distances, dtype=np.float64))
    out = np.full(d.shape, None, dtype=object)
    out[d <= threshold_for(distance, cal.threshold)] = True
    out[d > threshold_for(distance, cal.uncertain_above)] = False
    return [list(row) for row in out]


def reason(cal: Calibration) -> str:
    """Why a distance between ``threshold`` and ``uncertain_above`` is uncertain under ``cal``."""
    if cal.method == "uncalibrated":
        return f"{cal.note}: no distance is known to mean the same person; pass a threshold to decide"
    if cal.method == "dataset":
        return (
            f"above this table's calibrated threshold {cal.threshold:.3f} but within the model card's "
            f"{cal.card_threshold:.3f}: in this table's population different people also fall here"
        )
    return (
        f"between {cal.threshold:.3f} and the card's LFW threshold {cal.card_threshold:.3f}: different people of some "
        f"populations fall here, and this table can't calibrate itself ({cal.note}); pass a threshold to decide"
    )


#: Persons are grouped (``people/cluster.py``) while the average linkage of two large groups is at most this share of
#: the card's threshold (fr-feature: 0.626) ...
GROUP_RATIO = 0.93
#: ... and of two single faces at most this share of that (fr-feature: 0.501); in between it moves with the groups'
#: sizes. Measured on LFW and four other labelled sets (``benchmarks/cluster_lfw.py``).
FACE_RATIO = 0.8


def grouping_thresholds(cal: Calibration) -> tuple[float, float] | None:
    """``(face_threshold, group_threshold)``: the average-linkage distances up to which two single faces, and two
    large groups, are grouped into one person, for a table calibrated by ``cal``; ``None`` when the model is not
    calibrated (a threshold must then be given).

    The group threshold comes from the model card's threshold (or the user's, for a user calibration), not from the
    table's own different-person distances: those move with the population (a K-pop table's sit far closer than
    LFW's), but the linkage between whole persons does not, and a table-calibrated cut-off split K-pop idols into
    many persons (BCubed F 17 % against 95 %, ``benchmarks/cluster_lfw.py``). The face threshold is also never
    above the table's own same-person threshold: two single faces are one pair, and a pair the table's decision
    would not call the same person must not start a person either (persons decide search rows,
    :mod:`lookalike.people.decide`). On K-pop tables of 6 idols x 10 photos that cuts the rows of other idols
    marked the same person from 7.4 % to 5.6 %, for 0.6 BCubed points on the whole K-pop set."""
    if cal.method == "uncalibrated":
        return None
    base = cal.threshold if cal.method == "user" else cal.card_threshold
    face, group = grouping_pair(GROUP_RATIO * base)
    if cal.method in ("dataset", "card"):
        face = min(face, cal.threshold)
    return face, group


def grouping_pair(group_threshold: float) -> tuple[float, float]:
    """``(face_threshold, group_threshold)`` for a given group threshold (``--threshold`` of ``people cluster``)."""
    return float(FACE_RATIO * group_threshold), float(group_threshold)
