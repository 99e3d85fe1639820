"""The A/B statistics and settings (no database)."""

import math

import pytest
from django.core.exceptions import ValidationError

from campaigns.abtest import VariantResult, ab_test_clean, decide, two_proportion_ztest


def test_z_test_matches_statsmodels_documented_example():
    # statsmodels' proportions_ztest docstring: count=[5, 12], nobs=[83, 99] -> p-value 0.159.
    z, p = two_proportion_ztest(5, 83, 12, 99)
    assert round(p, 3) == 0.159
    assert z == pytest.approx(-1.40783, abs=1e-5)


def test_z_test_matches_the_formula_worked_by_hand():
    # 30/100 against 20/100: pooled 0.25, standard error sqrt(0.25 * 0.75 * 0.02) = 0.0612372.
    z, p = two_proportion_ztest(30, 100, 20, 100)
    assert z == pytest.approx(0.1 / 0.0612372, rel=1e-6)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)))
    assert p == pytest.approx(0.10247, abs=1e-5)
    # The test is symmetric: swapping the groups flips z and keeps p.
    z2, p2 = two_proportion_ztest(20, 100, 30, 100)
    assert (z2, p2) == pytest.approx((-z, p))


@pytest.mark.parametrize("counts", [(0, 100, 0, 100), (100, 100, 100, 100), (0, 0, 5, 10), (3, 10, 0, 0)], ids=str)
def test_no_evidence_is_z_0_p_1(counts):
    assert two_proportion_ztest(*counts) == (0.0, 1.0)


def test_equal_rates_are_not_significant():
    decision = decide([VariantResult("A", 1000, 200), VariantResult("B", 1000, 200)])
    assert (decision.best, decision.significant, decision.z, decision.p_value) == ("A", False, 0.0, 1.0)


def test_a_clear_winner_is_significant_and_the_closest_rival_is_reported():
    decision = decide([VariantResult("A", 2000, 300), VariantResult("B", 2000, 420), VariantResult("C", 2000, 310)])
    assert decision.best == "B"
    assert decision.significant
    # Reported against the closest rival (the largest p): C, not A.
    z_c, p_c = two_proportion_ztest(420, 2000, 310, 2000)
    assert (decision.z, decision.p_value) == pytest.approx((z_c, p_c))
    assert decision.p_value < 0.05


def test_best_must_beat_every_rival():
    # B leads A clearly but not C: no winner.
    decision = decide([VariantResult("A", 1000, 100), VariantResult("B", 1000, 160), VariantResult("C", 1000, 150)])
    assert decision.best == "B"
    assert not decision.significant
    assert decision.p_value > 0.05


def test_zero_sent_has_no_winner():
    decision = decide([VariantResult("A", 0, 0), VariantResult("B", 0, 0)])
    assert (decision.best, decision.significant) == ("A", False)


@pytest.mark.parametrize(
    ("value", "variants", "field"),
    [
        ("yes", 2, "ab_test"),
        ({"whatever": True}, 2, "ab_test"),
        ({"test_fraction": 0, "wait_hours": 1}, 2, "ab_test.test_fraction"),
        ({"test_fraction": 1, "wait_hours": 1}, 2, "ab_test.test_fraction"),
        ({"test_fraction": "0.2", "wait_hours": 1}, 2, "ab_test.test_fraction"),
        ({"test_fraction": True, "wait_hours": 1}, 2, "ab_test.test_fraction"),
        ({"test_fraction": 0.2, "wait_hours": 0}, 2, "ab_test.wait_hours"),
        ({"test_fraction": 0.2, "wait_hours": float("nan")}, 2, "ab_test.wait_hours"),
        ({"test_fraction": 0.2, "wait_hours": 1, "metric": "revenue"}, 2, "ab_test.metric"),
        ({"test_fraction": 0.2, "wait_hours": 1, "on_no_winner": "both"}, 2, "ab_test.on_no_winner"),
        ({"test_fraction": 0.2, "wait_hours": 1}, 1, "variants"),
    ],
)
def test_bad_settings_name_the_field(value, variants, field):
    with pytest.raises(ValidationError) as caught:
        ab_test_clean(value, variants=variants)
    assert field in caught.value.message_dict


def test_good_settings_are_completed():
    assert ab_test_clean({"test_fraction": 0.25, "wait_hours": 0.05}, variants=2) == {
        "test_fraction": 0.25,
        "metric": "open_rate",
        "wait_hours": 0.05,
        "on_no_winner": "first",
    }
    assert ab_test_clean({}, variants=1) == {}
