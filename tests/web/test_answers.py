"""The beacon answers built from pre-encoded bodies say exactly what the general ones say."""

from __future__ import annotations

import orjson
import pytest

from metricsd.web import beacons


@pytest.mark.parametrize("accepted,rejected", [(1, 0), (2, 0), (99, 0), (100, 0), (101, 0),
                                               (5000, 0), (0, 3), (4, 1), (0, 0)])
def test_answer_body_status_and_headers(accepted, rejected):
    errors = [{"index": i, "error": "x", "reason": "bad"} for i in range(rejected)]
    response = beacons._accepted(accepted, rejected, errors)
    assert orjson.loads(response.body) == {"accepted": accepted, "rejected": rejected,
                                           "errors": errors}
    assert response.status == (202 if accepted else 400)
    assert dict(response.headers) == {"Content-Type": "application/json"}
    assert response.content_type == "application/json" and response.charset is None


def test_headers_added_to_one_answer_do_not_leak_into_the_next():
    first = beacons._accepted(1, 0, [])
    first.headers["Vary"] = "Origin"
    assert "Vary" not in beacons._accepted(1, 0, []).headers
    refused = beacons._json(429, {"error": "slow down"}, {"Retry-After": "2"})
    assert dict(refused.headers) == {"Content-Type": "application/json", "Retry-After": "2"}
    assert "Retry-After" not in beacons._json(400, {}).headers
