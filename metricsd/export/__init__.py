"""Prometheus exposition of the store, the PostgreSQL snapshots and the daemon itself."""
