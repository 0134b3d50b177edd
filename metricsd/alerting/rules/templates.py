"""Prometheus annotation templates ({{ $labels.x }}, {{ $value | humanizeDuration }}) on jinja2.

Rules keep Prometheus's Go-template syntax so the same file runs in Prometheus. Each
template is translated once, at load time, into a jinja2 template in a sandbox: Go
pipelines `a | f b` become calls `f(b, a)`, `$labels.x` becomes `labels["x"]`, literal
text is passed through untouched. Numbers print as Go prints them (`{{ $value }}` of 1e6 is
`1e+06`), and the humanize functions follow Prometheus's formatting, so `metricsd rules
test` and `promtool test rules` expect the same strings. What cannot be translated
(`range`, `with`, `query`, variables) is refused with the reason.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import quote_plus

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from metricsd.labels import clean_text


class TemplateError(ValueError):
    """A template outside the supported subset of Go's text/template."""


# ---- Go-compatible number formatting ----------------------------------------------------


def _special(v: float) -> str | None:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return None


def go_float(v: float) -> str:
    """A float as Go's fmt %v prints it: shortest digits, exponent form from 1e6 and below 1e-4."""
    special = _special(v)
    if special is not None:
        return special
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits, exponent = Decimal(repr(v)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
    point = len(text) + exponent  # position of the decimal point in `text`
    exp = point - 1
    prefix = "-" if sign else ""
    # strconv's shortest %g switches to an exponent at 10^-5 and at 10^6 (eprec 6).
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{prefix}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{prefix}{text}{'0' * (point - len(text))}"
    return f"{prefix}{text[:point]}.{text[point:]}"


def g4(v: float) -> str:
    """Go's %.4g (NaN and infinities spelled the Go way)."""
    special = _special(v)
    return special if special is not None else f"{v:.4g}"


def go_str(value: Any) -> Any:
    """How Go's text/template prints a value: floats, booleans and nil the Go way."""
    if isinstance(value, jinja2.Undefined):
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return go_float(value)
    if value is None:
        return "<no value>"
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{go_str(v)}" for k, v in sorted(value.items())) + "]"
    return value


def _float(value: Any) -> float:
    if isinstance(value, str):
        return float(value.strip())
    return float(value)


_UP = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_UP_1024 = ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi")
_DOWN = ("m", "u", "n", "p", "f", "a", "z", "y")


def _scale_up(v: float, prefixes: tuple[str, ...], base: float) -> str:
    """Divide by `base` until under it: 1234 -> 1.234k."""
    prefix = ""
    for p in prefixes:
        if abs(v) < base:
            break
        prefix, v = p, v / base
    return f"{g4(v)}{prefix}"


def _scale_down(v: float) -> str:
    """Multiply by 1000 until at least 1: 0.0012 -> 1.2m."""
    prefix = ""
    for p in _DOWN:
        if abs(v) >= 1:
            break
        prefix, v = p, v * 1000
    return f"{g4(v)}{prefix}"


def humanize(value: Any) -> str:
    """1234 -> 1.234k, 0.0012 -> 1.2m: SI prefixes, four significant digits."""
    v = _float(value)
    if v == 0 or not math.isfinite(v):
        return g4(v)
    return _scale_up(v, _UP, 1000) if abs(v) >= 1 else _scale_down(v)


def humanize1024(value: Any) -> str:
    """1536 -> 1.5ki: binary prefixes, four significant digits."""
    v = _float(value)
    if abs(v) <= 1 or not math.isfinite(v):
        return g4(v)
    return _scale_up(v, _UP_1024, 1024)


def humanize_duration(value: Any) -> str:
    """Seconds as 1d 2h 3m 4s, 4.5s or 250ms, as Prometheus writes durations."""
    v = _float(value)
    if not math.isfinite(v):
        return g4(v)
    if v == 0:
        return f"{g4(v)}s"
    if abs(v) >= 1:
        sign = "-" if v < 0 else ""
        v = abs(v)
        whole = int(v)
        seconds, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{g4(v)}s"
    return f"{_scale_down(v)}s"


def humanize_percentage(value: Any) -> str:
    """0.1234 -> 12.34%."""
    return f"{g4(_float(value) * 100)}%"


def humanize_timestamp(value: Any) -> str:
    """Unix seconds as a UTC date and time."""
    v = _float(value)
    if not math.isfinite(v):
        return g4(v)
    return datetime.fromtimestamp(v, UTC).strftime("%Y-%m-%d %H:%M:%S.%f").rstrip("0").rstrip(
        "."
    ) + " +0000 UTC"


_VERB_RE = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([a-zA-Z%])")


def go_printf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use: %s %v %d %f %e %g %x %q %t %%."""
    values = list(args)
    out: list[str] = []
    pos = 0
    for match in _VERB_RE.finditer(fmt):
        out.append(fmt[pos:match.start()])
        pos = match.end()
        flags, width, precision, verb = match.groups()
        if verb == "%":
            out.append("%")
            continue
        if not values:
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = values.pop(0)
        spec = f"{flags}{width or ''}" + (f".{precision}" if precision is not None else "")
        try:
            if verb in "fFeEgG":
                number = _float(arg)
                special = _special(number)
                text = special if special is not None else format(number, spec + verb)
            elif verb == "d":
                text = format(int(_float(arg)), spec + "d")
            elif verb in "xX":
                text = format(int(_float(arg)), spec + verb) if not isinstance(arg, str) \
                    else arg.encode().hex()
            elif verb == "q":
                text = json.dumps(str(go_str(arg)))
            elif verb == "t":
                text = str(go_str(bool(arg)))
            else:  # s, v and anything else print the value as Go would
                text = format(str(go_str(arg)), spec.replace("0", "") if spec else "")
        except (TypeError, ValueError):
            text = f"%!{verb}({type(arg).__name__}={go_str(arg)})"
        out.append(text)
    out.append(fmt[pos:])
    return "".join(out)


def _re_replace_all(pattern: str, replacement: str, text: str) -> str:
    # Go writes group references as $1 / ${1}; Python as \1.
    python = re.sub(r"\$\{?(\d+)\}?", r"\\\1", replacement)
    return re.sub(pattern, python, str(text))


def _strip_port(host: str) -> str:
    if host.startswith("[") and "]" in host:
        return host[1:host.index("]")]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "humanize": humanize,
    "humanize1024": humanize1024,
    "humanizeDuration": humanize_duration,
    "humanizePercentage": humanize_percentage,
    "humanizeTimestamp": humanize_timestamp,
    "printf": go_printf,
    "toUpper": lambda s: str(s).upper(),
    "toLower": lambda s: str(s).lower(),
    "title": lambda s: str(s).title(),
    "reReplaceAll": _re_replace_all,
    "match": lambda pattern, text: re.search(pattern, str(text)) is not None,
    "stripPort": _strip_port,
    "stripDomain": lambda host: str(host).split(".", 1)[0] if ":" not in str(host) else host,
    "safeHtml": lambda s: s,
    "urlquery": lambda *a: quote_plus("".join(map(str, a))),
    "len": lambda v: len(v),
    "index": lambda m, k: m.get(k, "") if isinstance(m, Mapping) else m[int(k)],
    "eq": lambda a, *b: any(a == x for x in b),
    "ne": lambda a, b: a != b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "not": lambda a: not a,
    "and": lambda *a: next((x for x in a if not x), a[-1]),
    "or": lambda *a: next((x for x in a if x), a[-1]),
    "print": lambda *a: "".join(str(go_str(x)) for x in a),
    "html": lambda s: html.escape(str(s)),
    "js": lambda s: json.dumps(str(s))[1:-1],
}
UNSUPPORTED = {
    "query": "query needs the Prometheus query API; metricsd templates cannot run queries",
    "range": "range is not supported (no query results to iterate)",
    "with": "with is not supported; use if",
    "define": "define/template/block are not supported",
    "template": "define/template/block are not supported",
    "block": "define/template/block are not supported",
    "first": "first/label/value/sortByLabel work on query results, which metricsd cannot run",
    "label": "first/label/value/sortByLabel work on query results, which metricsd cannot run",
    "value": "first/label/value/sortByLabel work on query results, which metricsd cannot run",
    "sortByLabel": "first/label/value/sortByLabel work on query results, which metricsd cannot run",
}

_ACTION_RE = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_TOKEN_RE = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*"|`[^`]*`)
      | (?P<number>-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
      | (?P<var>\$[A-Za-z_]\w*(?:\.\w+)*|\$)
      | (?P<field>(?:\.[A-Za-z_]\w*)+|\.)
      | (?P<ident>[A-Za-z_]\w*)
      | (?P<punct>[|()])
    )""",
    re.VERBOSE,
)
_VARIABLES = {"$labels": "labels", "$value": "value", "$externalLabels": "externalLabels",
              "$externalURL": "externalURL", ".Labels": "labels", ".Value": "value",
              ".ExternalLabels": "externalLabels", ".ExternalURL": "externalURL"}


def _tokens(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None or match.end() == pos:
            raise TemplateError(f"cannot read {text[pos:]!r} in {{{{ {text} }}}}")
        kind = match.lastgroup
        assert kind is not None
        out.append((kind, match.group(kind)))
        pos = match.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return out


def _variable(token: str) -> str:
    parts = token.split(".")
    if token.startswith("."):  # .Labels.x: the dot form of the same data
        head, path = "." + parts[1], parts[2:]
    else:
        head, path = parts[0], parts[1:]
    if head not in _VARIABLES:
        raise TemplateError(f"unknown variable {token}; use $labels, $value, $externalLabels "
                            "or $externalURL")
    out = _VARIABLES[head]
    for part in path:
        out += f"[{json.dumps(part)}]"
    return out


class _Translator:
    """Go pipeline tokens -> one jinja2 expression."""

    def __init__(self, tokens: list[tuple[str, str]]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def pipeline(self) -> str:
        piped: str | None = None
        while True:
            piped = self.command(piped)
            token = self.peek()
            if token is None or token == ("punct", ")"):
                return piped
            if token != ("punct", "|"):
                raise TemplateError(f"unexpected {token[1]!r}")
            self.pos += 1

    def command(self, piped: str | None) -> str:
        token = self.peek()
        if token is None:
            raise TemplateError("empty command")
        kind, text = token
        if kind == "ident":
            if text in UNSUPPORTED:
                raise TemplateError(UNSUPPORTED[text])
            if text in ("true", "false", "nil"):
                self.pos += 1
                return {"true": "true", "false": "false", "nil": "none"}[text]
            if text not in FUNCTIONS:
                raise TemplateError(f"unknown function {text!r}")
            self.pos += 1
            args = []
            while (t := self.peek()) is not None and t[1] not in ("|", ")"):
                args.append(self.operand())
            if piped is not None:
                args.append(piped)
            return f"fn_{text}({', '.join(args)})"
        value = self.operand()
        nxt = self.peek()
        if nxt is not None and nxt[1] not in ("|", ")"):
            raise TemplateError(f"{text} is not a function and takes no arguments")
        if piped is not None:
            raise TemplateError(f"cannot pipe into {text}")
        return value

    def operand(self) -> str:
        kind, text = self.tokens[self.pos]
        self.pos += 1
        if kind == "string":
            if text.startswith("`"):
                return json.dumps(text[1:-1])
            return json.dumps(json.loads(text))
        if kind == "number":
            return repr(float(text)) if any(c in text for c in ".eE") else text
        if kind in ("var", "field"):
            return _variable(text)
        if kind == "ident":
            if text in ("true", "false"):
                return text
            if text in FUNCTIONS:
                return f"fn_{text}()"
            raise TemplateError(f"unknown function {text!r}")
        if text == "(":
            inner = self.pipeline()
            if self.peek() != ("punct", ")"):
                raise TemplateError("missing )")
            self.pos += 1
            return f"({inner})"
        raise TemplateError(f"unexpected {text!r}")


def _translate_action(body: str) -> str:
    """One Go action -> jinja2 source ({{ expr }} or {% if %} ...)."""
    stripped = body.strip()
    if stripped.startswith("/*") and stripped.endswith("*/"):
        return ""
    tokens = _tokens(stripped)
    if not tokens:
        raise TemplateError("empty action {{ }}")
    head = tokens[0]
    if head == ("ident", "end"):
        if len(tokens) > 1:
            raise TemplateError("end takes nothing")
        return "{% endif %}"
    if head == ("ident", "else"):
        if len(tokens) == 1:
            return "{% else %}"
        if tokens[1] == ("ident", "if"):
            return "{% elif " + _pipeline(tokens[2:]) + " %}"
        raise TemplateError("only 'else' and 'else if' are supported")
    if head == ("ident", "if"):
        return "{% if " + _pipeline(tokens[1:]) + " %}"
    if head[0] == "var" and len(tokens) > 1 and tokens[1][1] in (":=", "="):
        raise TemplateError("template variables are not supported")
    return "{{ " + _pipeline(tokens) + " }}"


def _pipeline(tokens: list[tuple[str, str]]) -> str:
    translator = _Translator(tokens)
    expr = translator.pipeline()
    if translator.peek() is not None:
        raise TemplateError(f"unexpected {translator.peek()[1]!r}")  # type: ignore[index]
    return expr


def translate(source: str) -> str:
    """Go template text -> jinja2 template text; TemplateError when outside the subset."""
    parts: list[str] = []
    pos = 0
    trim_next = False
    for match in _ACTION_RE.finditer(source):
        text = source[pos:match.start()]
        if trim_next:
            text = text.lstrip()
        if match.group(1):
            text = text.rstrip()
        if text:
            if "{% endraw %}" in text:
                raise TemplateError("literal text may not contain '{% endraw %}'")
            parts.append("{% raw %}" + text + "{% endraw %}")
        if ":=" in match.group(2):
            raise TemplateError("template variables (:=) are not supported")
        parts.append(_translate_action(match.group(2)))
        trim_next = bool(match.group(3))
        pos = match.end()
    text = source[pos:]
    if trim_next:
        text = text.lstrip()
    if "{{" in text:
        raise TemplateError("unclosed {{")
    if text:
        if "{% endraw %}" in text:
            raise TemplateError("literal text may not contain '{% endraw %}'")
        parts.append("{% raw %}" + text + "{% endraw %}")
    return "".join(parts)


def make_environment() -> jinja2.Environment:
    """A sandboxed environment that prints values the way Go does."""
    env = ImmutableSandboxedEnvironment(
        autoescape=False, finalize=go_str, keep_trailing_newline=True,
        undefined=jinja2.Undefined,
    )
    env.globals.update({f"fn_{name}": fn for name, fn in FUNCTIONS.items()})
    return env


_ENV = make_environment()
# Longest rendered annotation or label; longer output ends in an ellipsis.
MAX_TEMPLATE_OUTPUT = 16384


class AlertTemplate:
    """A compiled annotation or label template; render() never raises."""

    __slots__ = ("_template", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        if "{{" not in source:
            self._template: jinja2.Template | None = None
            return
        try:
            self._template = _ENV.from_string(translate(source))
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(f"cannot translate template: {exc.message}") from None

    def render(
        self,
        labels: Mapping[str, str],
        value: float,
        external_labels: Mapping[str, str] | None = None,
        external_url: str = "",
    ) -> str:
        if self._template is None:
            return self.source
        try:
            out = self._template.render(
                labels=dict(labels), value=value, externalLabels=dict(external_labels or {}),
                externalURL=external_url,
            )
        except Exception as exc:  # a bad value must not stop evaluation; Prometheus does this
            out = f"<error expanding template: {exc}>"
        # Output becomes labels and annotations: through the one label choke point.
        return clean_text(out, MAX_TEMPLATE_OUTPUT)
