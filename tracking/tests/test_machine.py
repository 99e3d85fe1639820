from datetime import timedelta

import pytest
from django.utils import timezone

from tracking import machine

SENT = timezone.now() - timedelta(hours=1)
LATER = SENT + timedelta(minutes=30)
CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
GMAIL = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"


@pytest.mark.parametrize(
    ("agent", "ip", "when", "expected"),
    [
        (CHROME, "203.0.113.9", LATER, False),
        ("Mozilla/5.0", "203.0.113.9", LATER, True),  # Apple Mail Privacy Protection
        (CHROME, "17.58.101.4", LATER, True),  # Apple's network
        ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html", None, LATER, True),
        (GMAIL, None, LATER, False),  # Gmail fetches when the message is opened
        (GMAIL, None, SENT + timedelta(seconds=1), True),  # ... unless it is a prefetch on arrival
        ("", None, LATER, True),
        ("Barracuda Sentinel (EE)", None, LATER, True),
    ],
)
def test_machine_opens(agent, ip, when, expected):
    assert (
        machine.is_machine_open(user_agent=agent, ip=ip, occurred_at=when, sent_at=SENT, window_seconds=2) is expected
    )


@pytest.mark.parametrize(
    ("agent", "method", "when", "expected"),
    [
        (CHROME, "GET", LATER, False),
        (CHROME, "GET", SENT + timedelta(seconds=1), True),  # faster than anyone reads
        (CHROME, "HEAD", LATER, True),
        ("python-requests/2.32", "GET", LATER, True),
        ("Mozilla/5.0 (compatible; BingPreview/1.0b)", "GET", LATER, True),
        ("", "GET", LATER, True),
    ],
)
def test_machine_clicks(agent, method, when, expected):
    result = machine.is_machine_click(user_agent=agent, method=method, occurred_at=when, sent_at=SENT, window_seconds=2)
    assert result is expected


def test_a_window_of_zero_turns_the_timing_rule_off():
    assert not machine.within_window(SENT, SENT, 0)
