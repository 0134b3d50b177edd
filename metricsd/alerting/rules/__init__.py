"""Rule evaluation: load rule files, PromQL subset, templates, the engine, rule unit tests."""
