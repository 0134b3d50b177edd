"""metricsd: beacons, PostgreSQL statistics and alerts, exported for Prometheus."""

__version__ = "0.1.0"
