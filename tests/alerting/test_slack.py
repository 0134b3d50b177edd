"""Slack bodies: every templated value is inert mrkdwn, whatever a page label holds."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Gauge

from metricsd.alerting.notify.notification import Notification, NotifyAlert
from metricsd.alerting.notify.receivers.slack import SlackReceiver
from metricsd.alerting.rules.load import load_rule_file
from metricsd.config import ReceiverConfig
from tests.alerting.conftest import receiver_config

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = [
    "/<!channel> <https://evil.example|Your session expired>",
    "/<!here>",
    "/<@U012AB3CD> <#C123|general>",
    "/a&lt;b &amp; <mailto:x@evil.example>",
    "/x>`<!subteam^S123>`",
    "/|<https://a.example|b>|",
]
# What this module writes itself: <url|Runbook> and <url|Query>; anything else with < or >
# would be Slack markup that came from data.
OWN_LINK = re.compile(r"<[^<>|]*\|(?:Runbook|Query)>")


def mrkdwn_texts(body: dict) -> list[str]:
    texts = [body["text"]]
    for block in body["blocks"]:
        if block["type"] == "section":
            texts.append(block["text"]["text"])
        elif block["type"] == "context":
            texts.extend(e["text"] for e in block["elements"])
    return texts


def assert_inert(body: dict) -> None:
    for text in mrkdwn_texts(body):
        rest = OWN_LINK.sub("", text)
        assert "<" not in rest and ">" not in rest, text
        assert not re.search(r"&(?!amp;|lt;|gt;)", rest), text


def unescape(text: str) -> str:
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


@pytest.mark.parametrize("page", HOSTILE)
async def test_shipped_lcp_rule_with_a_hostile_page_is_inert_in_slack(
        make_receiver, make_service, clock, page):
    rec = await make_receiver()
    registry = CollectorRegistry()
    lcp = Gauge("metricsd_web_vitals_lcp_window_seconds", "LCP window quantiles",
                ["page", "quantile"], registry=registry)
    lcp.labels(page=page, quantile="0.75").set(6.5)
    rules = (ROOT / "alerts.yml").read_text()
    assert "WebVitalsLCPPoor" in rules
    service = make_service({"receivers": [receiver_config("slack", rec.url, format="slack",
                                                          secret="s3cret")],
                            "default_receiver": "slack"},
                           rules=rules, registry=registry, gauge=lcp)
    await service.evaluate_once()
    clock.advance(601)  # the shipped rule's for: 10m
    await service.evaluate_once()
    await rec.wait_for(1)
    [received] = rec.received
    body = received.json
    assert "WebVitalsLCPPoor" in body["text"]
    assert_inert(body)
    # The value is still there for a human to read, exactly once unescaped.
    assert any(page in unescape(t) for t in mrkdwn_texts(body))
    # The signature is over the exact bytes sent, as before.
    expected = "sha256=" + hmac.new(b"s3cret", received.body, hashlib.sha256).hexdigest()
    assert received.headers["X-Metricsd-Signature"] == expected


def test_shipped_rule_file_still_loads():
    assert load_rule_file(str(ROOT / "alerts.yml"))


TEXT = st.text(alphabet=st.sampled_from("<>&|!@#*_`~ :/abc\n"), max_size=30)


@settings(max_examples=300, deadline=None)
@given(labels=st.dictionaries(st.sampled_from(["page", "route", "service", "x"]), TEXT,
                              max_size=3),
       annotations=st.dictionaries(st.sampled_from(["summary", "description", "runbook_url"]),
                                   TEXT, max_size=3),
       receiver=st.sampled_from(["oncall", "a<b>&c"]), group_value=TEXT)
def test_any_templated_value_renders_inert(labels, annotations, receiver, group_value):
    alert = NotifyAlert(fingerprint="0" * 16, labels={"alertname": "A", **labels},
                        annotations=annotations, starts_at=1_700_000_000.0, ends_at=None,
                        generator_url="http://m.test/graph?g0.expr=a%3Eb&g0.tab=1")
    notification = Notification(receiver, "{}:{}", {"alertname": "A", "page": group_value},
                                [alert], "http://m.test")
    config = ReceiverConfig(name=receiver, url="http://hook.test/", format="slack")
    assert_inert(dict(SlackReceiver(config).render(notification)))
