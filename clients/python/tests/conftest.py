"""The client's own tests use only the standard library and the installed metricsd_client."""
