"""Beacon types: parse and validate one item, then record samples into the store."""
