"""API timings from app servers: one request's service, route, method, status and duration."""

from __future__ import annotations

from typing import Any

from metricsd.errors import BeaconError
from metricsd.ingest.base import BeaconType, Context, Sample, as_object, number, register, timestamp
from metricsd.ingest.normalize import normalize_method, normalize_path


@register
class TimingsBeacon(BeaconType):
    """`{"service","route","method","status","duration_ms","timestamp"?}` into the api family."""

    name = "timings"
    needs_token = True
    cors = False

    def parse(self, item: Any, ctx: Context) -> Sample:
        item = as_object(item)
        service = self.string(item, "service")
        route = self.string(item, "route")
        method = self.string(item, "method")
        status = item.get("status")
        if type(status) is not int:
            if status is None:
                raise BeaconError("status is required", "missing_field")
            raise BeaconError("status must be an integer HTTP status code", "wrong_type")
        if not 100 <= status <= 599:
            raise BeaconError("status must be between 100 and 599", "out_of_range")
        duration_ms = number(item, "duration_ms", 0.0, self.config.max_duration_ms)
        assert service is not None and route is not None and method is not None
        key = (service, normalize_path(route), normalize_method(method))
        return Sample("api", key, duration_ms / 1000.0, timestamp(item, ctx.now), status // 100 - 1)
