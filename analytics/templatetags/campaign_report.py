"""`{% campaign_report campaign budget_url %}`: a campaign's analytics panel, for pages of other apps
(the campaign admin page) that show it without importing analytics."""

from __future__ import annotations

from django import template
from django.template.loader import render_to_string

from analytics.panels import campaign_panel

register = template.Library()


@register.simple_tag(takes_context=True)
def campaign_report(context, campaign, budget_url=None) -> str:
    """KPIs, rates, revenue, budget and ROI, the daily chart and the links of `campaign`; with
    `budget_url`, a form that posts a new budget there."""
    panel = campaign_panel(campaign)
    if budget_url:
        panel["budget_url"] = budget_url
    return render_to_string("analytics/campaign_panel.html", panel, request=context.get("request"))
