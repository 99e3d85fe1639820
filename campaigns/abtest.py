"""A/B tests: the settings and the statistics, with no database.

A campaign with two or more variants may carry `ab_test`:

    {"test_fraction": 0.2, "metric": "open_rate", "wait_hours": 4, "on_no_winner": "first"}

A random `test_fraction` of the audience (stratified by the variant weights) gets the test; the rest
is held. `wait_hours` after the last test send, the variant with the best rate (unique opens or
clicks over messages sent minus bounced) is compared with every other one by a two-sided
two-proportion z-test (pooled variance). It wins when every comparison has p < `ALPHA`; otherwise
`on_no_winner` decides: "first" sends the first variant (by name order) to the rest, "split" splits
the rest by the weights as a plain A/B campaign would.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

ALPHA = 0.05
METRICS = ("open_rate", "click_rate")
ON_NO_WINNER = ("first", "split")
KEYS = ("test_fraction", "metric", "wait_hours", "on_no_winner")
MAX_WAIT_HOURS = 24 * 30


def ab_test_clean(value: Any, *, variants: int) -> dict[str, Any]:
    """The `ab_test` setting checked and completed ({} = no test); raises ValidationError naming
    `ab_test.<key>` (or `variants` when there are fewer than two)."""
    if value in (None, {}):
        return {}
    if not isinstance(value, dict):
        raise ValidationError({"ab_test": ["Must be an object {test_fraction, metric, wait_hours, on_no_winner}."]})
    unknown = sorted(set(value) - set(KEYS))
    if unknown:
        raise ValidationError({"ab_test": [f"Unknown key(s): {', '.join(unknown)}."]})
    fraction = value.get("test_fraction")
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ValidationError({"ab_test.test_fraction": ["A number between 0 and 1 (exclusive), e.g. 0.2."]})
    metric = value.get("metric", "open_rate")
    if metric not in METRICS:
        raise ValidationError({"ab_test.metric": [f"Must be one of: {', '.join(METRICS)}."]})
    wait = value.get("wait_hours")
    if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 < wait <= MAX_WAIT_HOURS or wait != wait:
        raise ValidationError({"ab_test.wait_hours": [f"Hours greater than 0 and at most {MAX_WAIT_HOURS}."]})
    on_no_winner = value.get("on_no_winner", "first")
    if on_no_winner not in ON_NO_WINNER:
        raise ValidationError({"ab_test.on_no_winner": [f"Must be one of: {', '.join(ON_NO_WINNER)}."]})
    if variants < 2:
        raise ValidationError({"variants": ["An A/B test needs at least two variants."]})
    return {"test_fraction": float(fraction), "metric": metric, "wait_hours": float(wait), "on_no_winner": on_no_winner}


def two_proportion_ztest(successes_a: int, trials_a: int, successes_b: int, trials_b: int) -> tuple[float, float]:
    """(z, two-sided p) of "rate a differs from rate b", pooled variance (as statsmodels'
    `proportions_ztest` computes it). No evidence either way (an empty group, or every trial a success
    or none) is z = 0, p = 1."""
    if trials_a <= 0 or trials_b <= 0:
        return 0.0, 1.0
    pooled = (successes_a + successes_b) / (trials_a + trials_b)
    variance = pooled * (1 - pooled) * (1 / trials_a + 1 / trials_b)
    if variance <= 0:
        return 0.0, 1.0
    z = (successes_a / trials_a - successes_b / trials_b) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


@dataclass(frozen=True)
class VariantResult:
    name: str
    trials: int  # messages sent minus bounced
    successes: int  # unique opens or clicks (machine ones excluded)

    @property
    def rate(self) -> float:
        return self.successes / self.trials if self.trials else 0.0


@dataclass(frozen=True)
class Decision:
    best: str | None  # the variant with the highest rate (first by order on a tie); None without variants
    significant: bool  # the best beat every other one with p < ALPHA
    z: float | None  # against the closest rival (the largest p)
    p_value: float | None


def decide(results: Sequence[VariantResult]) -> Decision:
    """The best variant and whether its lead is real (see the module docstring)."""
    if not results:
        return Decision(best=None, significant=False, z=None, p_value=None)
    best = max(results, key=lambda r: r.rate)  # max keeps the first of equals
    rivals = [r for r in results if r is not best]
    if not rivals:
        return Decision(best=best.name, significant=False, z=None, p_value=None)
    tests = [two_proportion_ztest(best.successes, best.trials, r.successes, r.trials) for r in rivals]
    z, p = max(tests, key=lambda test: test[1])
    significant = all(test_p < ALPHA for _, test_p in tests) and best.rate > max(r.rate for r in rivals)
    return Decision(best=best.name, significant=significant, z=z, p_value=p)
