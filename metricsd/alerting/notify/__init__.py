"""Notification: grouping and dispatch, routing, receivers, dead letters."""
