"""Same-person calibration (lookalike.search.calibration) on synthetic populations with known structure.

A population is made of unit vectors ``sqrt(a) * shared + sqrt(1 - a) * own``: any two faces of it have cosine
similarity about ``a`` (distance ``1 - a``), as different people of one look-alike population do. A person's
photos share a further component, so their distances are small (0.3-0.45), as same-person pairs are.
"""

from __future__ import annotations

import numpy as np
import pytest

from lookalike.errors import InvalidArgument
from lookalike.search import calibration as cal

CARD, SAFE, DIM = 0.673, 0.48, 512


def population(people: int, photos: int, closeness: float, spread: float, seed: int = 0) -> np.ndarray:
    """``people x photos`` unit vectors; different people at cosine distance ~``1 - closeness``."""
    rng = np.random.default_rng(seed)
    shared = rng.standard_normal(DIM)
    shared /= np.linalg.norm(shared)
    # each person's own similarity to the population varies, which widens the different-person distribution
    weight = np.clip(closeness + spread * rng.standard_normal(people), 0.0, 0.9)
    own = rng.standard_normal((people, DIM))
    own /= np.linalg.norm(own, axis=1, keepdims=True)
    centres = np.sqrt(weight)[:, None] * shared + np.sqrt(1 - weight)[:, None] * own
    faces = np.repeat(centres, photos, axis=0) * np.sqrt(0.65)
    noise = rng.standard_normal(faces.shape)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    faces += np.sqrt(0.35) * noise
    return (faces / np.linalg.norm(faces, axis=1, keepdims=True)).astype(np.float32)


def different_person_distances(x: np.ndarray, photos: int) -> np.ndarray:
    person = np.arange(len(x)) // photos
    d = 1.0 - x @ x.T
    iu = np.triu_indices(len(x), 1)
    return d[iu][(person[:, None] != person[None, :])[iu]]


def test_a_look_alike_population_gets_a_stricter_threshold_that_holds_its_false_matches() -> None:
    x = population(people=300, photos=1, closeness=0.3, spread=0.08)
    impostors = different_person_distances(x, 1)
    assert np.mean(impostors <= CARD) > 0.003  # the card's LFW threshold misses the 0.3 % aim here
    c = cal.calibrate(x, CARD, SAFE)
    assert c.method == "dataset" and c.threshold < CARD - 0.03
    assert np.mean(impostors <= c.threshold) <= 0.003
    assert c.pairs == 300 * 299 // 2 and c.faces == 300


def test_a_well_separated_population_keeps_the_card_threshold() -> None:
    x = population(people=300, photos=1, closeness=0.0, spread=0.0)
    c = cal.calibrate(x, CARD, SAFE)
    assert c.method == "dataset" and c.threshold == CARD  # never looser than the card


def test_same_person_pairs_in_the_table_do_not_move_the_estimate_much() -> None:
    alone = cal.calibrate(population(200, 1, 0.3, 0.08, seed=1), CARD, SAFE)
    with_repeats = cal.calibrate(population(200, 3, 0.3, 0.08, seed=1), CARD, SAFE)
    assert with_repeats.method == "dataset"
    assert abs(with_repeats.threshold - alone.threshold) < 0.05


@pytest.mark.parametrize(
    ("people", "photos", "why"),
    [(5, 2, "too few to calibrate"), (3, 40, "too few people to calibrate")],
)
def test_tables_that_cannot_calibrate_fall_back_to_the_cards_safe_band(people: int, photos: int, why: str) -> None:
    c = cal.calibrate(population(people, photos, 0.3, 0.08), CARD, SAFE)
    assert c.method == "card" and why in c.note
    assert (c.threshold, c.uncertain_above) == (SAFE, CARD)
    assert cal.decide(0.40, c) is True
    assert cal.decide(0.60, c) is None and "can't calibrate itself" in cal.reason(c)
    assert cal.decide(0.70, c) is False


def test_a_model_without_a_safe_threshold_uses_its_card_threshold_alone() -> None:
    c = cal.card_calibration(CARD, None)
    assert (c.threshold, c.uncertain_above) == (CARD, CARD)
    assert cal.decide(CARD, c) is True and cal.decide(CARD + 1e-6, c) is False


def test_decide_array_matches_decide() -> None:
    c = cal.card_calibration(CARD, SAFE)
    d = np.array([[0.1, 0.48, 0.5], [0.673, 0.7, 1.2]])
    assert cal.decide_array(d, c) == [[True, True, None], [None, False, False]]
    assert cal.decide_array(d, c) == [[cal.decide(float(v), c) for v in row] for row in d]


def test_user_threshold_is_used_as_is_and_checked() -> None:
    c = cal.user_calibration(0.5, CARD)
    assert cal.decide(0.5, c) is True and cal.decide(0.51, c) is False
    with pytest.raises(InvalidArgument):
        cal.user_calibration(-0.1, CARD)


def test_calibration_round_trips_through_json() -> None:
    c = cal.calibrate(population(100, 1, 0.3, 0.08), CARD, SAFE)
    assert cal.Calibration.from_json(c.to_json()) == c
    assert cal.Calibration.from_json(None) is None


def test_grouping_thresholds_follow_the_models_threshold_not_the_tables_population() -> None:
    lfw_like = cal.Calibration(method="dataset", threshold=0.673, uncertain_above=0.673, card_threshold=0.673)
    face, group = cal.grouping_thresholds(lfw_like)  # type: ignore[misc]
    assert group == pytest.approx(0.93 * 0.673) and face == pytest.approx(0.8 * group)
    # a table calibrated on a look-alike population groups large groups with the same threshold (persons don't
    # move), but two single faces only at a distance its own calibration calls the same person
    dataset = cal.Calibration(
        method="dataset", threshold=0.40, uncertain_above=0.673, card_threshold=0.673, mode=0.82, spread=0.126
    )
    assert cal.grouping_thresholds(dataset) == (0.40, group)
    assert cal.grouping_thresholds(cal.card_calibration(0.673, 0.48)) == (0.48, group)  # the card's sure band
    # a user's threshold stands in for the card's; an uncalibrated model has none
    assert cal.grouping_thresholds(cal.user_calibration(0.6, 0.673)) == pytest.approx((0.8 * 0.558, 0.558))
    assert cal.grouping_thresholds(cal.uncalibrated("mine")) is None
