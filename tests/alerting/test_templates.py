"""Template translation: Prometheus syntax in, Go-style text out, unsupported parts refused."""

from __future__ import annotations

import pytest

from metricsd.alerting.rules.templates import AlertTemplate, TemplateError, go_float


@pytest.mark.parametrize(("value", "text"), [
    (0.5, "0.5"), (100000.0, "100000"), (1e6, "1e+06"), (1234567.0, "1.234567e+06"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.0, "-2"), (float("inf"), "+Inf"),
    (float("nan"), "NaN"),
])
def test_values_print_like_go(value, text):
    assert go_float(value) == text


def test_literal_text_with_jinja_syntax_is_kept_verbatim():
    template = AlertTemplate("{% if x %} {{ $labels.a }} {# not a comment #}")
    assert template.render({"a": "1"}, 0.0) == "{% if x %} 1 {# not a comment #}"


def test_missing_label_is_empty_and_runtime_errors_are_reported_inline():
    assert AlertTemplate("[{{ $labels.nope }}]").render({}, 1.0) == "[]"
    out = AlertTemplate("{{ humanize $labels.text }}").render({"text": "abc"}, 1.0)
    assert out.startswith("<error expanding template:")


@pytest.mark.parametrize(("source", "reason"), [
    ('{{ query "up" }}', "query"),
    ("{{ range $labels }}{{ end }}", "range"),
    ("{{ $x := 1 }}", "variables"),
    ("{{ $nope }}", "unknown variable"),
    ("{{ frobnicate $value }}", "unknown function"),
    ("{{ $labels.a", "unclosed"),
])
def test_unsupported_templates_are_refused_at_load(source, reason):
    with pytest.raises(TemplateError, match=reason):
        AlertTemplate(source)
