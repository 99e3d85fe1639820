"""`{% per_day_chart rows title %}`: a bar chart of `[{date, count}]` rows (a dry run's messages per
day), drawn by `analytics.charts` for pages of other apps that must not import analytics."""

from __future__ import annotations

from datetime import date, timedelta

from django import template

from analytics.charts import Series, daily_chart

register = template.Library()

# Days between the first and the last row are drawn (with 0 where nothing is planned) up to this span;
# a longer plan shows only its days with messages.
MAX_FILLED_DAYS = 400


@register.simple_tag
def per_day_chart(rows, title: str, value_label: str = "Messages") -> str:
    """Bars per day from rows `{"date": "YYYY-MM-DD", "count": n}`, the days between them filled with 0."""
    counts: dict[date, int] = {}
    for row in rows or []:
        day = date.fromisoformat(str(row["date"]))
        counts[day] = counts.get(day, 0) + int(row["count"])
    days = sorted(counts)
    if days and (days[-1] - days[0]).days < MAX_FILLED_DAYS:
        days = [days[0] + timedelta(days=offset) for offset in range((days[-1] - days[0]).days + 1)]
    return daily_chart(
        days,
        [Series(value_label, [counts.get(day, 0) for day in days])],
        title=title,
        kind="bar",
        value_label=value_label,
    )
