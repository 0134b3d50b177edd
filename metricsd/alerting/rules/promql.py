"""The PromQL subset metricsd evaluates: parsed by promql-parser, compiled into small nodes.

Anything outside the subset is refused when the rule is loaded (UnsupportedQuery, with the
reason), never at evaluation time. Evaluation is pure: it reads a mapping of metric name to
current samples and returns an instant vector, so the engine and `metricsd rules test` share
it. Semantics follow Prometheus: arithmetic and aggregations drop the metric name,
comparisons filter unless `bool`, one-to-one vector matching on all labels but the name (or
`on`/`ignoring`), NaN compares false.
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import promql_parser as pp

NAME = "__name__"
Labels = dict[str, str]
SampleSource = Mapping[str, Sequence[tuple[Mapping[str, str], float]]]


class UnsupportedQuery(ValueError):
    """The expression is valid PromQL but outside what metricsd evaluates (or not PromQL)."""


class EvaluationError(ValueError):
    """The data made the expression fail, as in Prometheus (e.g. duplicate series in matching)."""


class Sample:
    """One element of an instant vector: labels without the name, the name (or None), a value.

    Labels are shared with the source and never mutated, so selecting costs no copy, and
    dropping the metric name is just `name=None`.
    """

    __slots__ = ("labels", "name", "value")

    def __init__(self, labels: Mapping[str, str], value: float, name: str | None = None) -> None:
        self.labels = labels
        self.value = value
        self.name = name

    def label_dict(self) -> Labels:
        """All labels, __name__ included while the sample still has one ($labels)."""
        out = dict(self.labels)
        if self.name is not None:
            out[NAME] = self.name
        return out


Vector = list[Sample]
Value = Vector | float
Signature = frozenset[tuple[str, str]]


class Node:
    """A compiled expression; `is_vector` is known at compile time."""

    is_vector: bool = True

    def eval(self, source: SampleSource) -> Value:
        raise NotImplementedError

    def metric_names(self) -> set[str]:
        return set()


@dataclass
class Number(Node):
    value: float
    is_vector: bool = False

    def eval(self, source: SampleSource) -> Value:
        return self.value


@dataclass
class Selector(Node):
    """An instant-vector selector: a metric name and label matchers."""

    name: str
    matchers: list[tuple[str, str, str | re.Pattern[str]]]  # (label, op, value)

    def metric_names(self) -> set[str]:
        return {self.name}

    def matches(self, labels: Mapping[str, str]) -> bool:
        for label, op, want in self.matchers:
            have = labels.get(label, "")
            if op == "=":
                ok = have == want
            elif op == "!=":
                ok = have != want
            elif op == "=~":
                ok = bool(want.fullmatch(have))  # type: ignore[union-attr]
            else:
                ok = not want.fullmatch(have)  # type: ignore[union-attr]
            if not ok:
                return False
        return True

    def eval(self, source: SampleSource) -> Value:
        name = self.name
        if not self.matchers:
            return [Sample(labels, float(value), name) for labels, value in source.get(name, ())]
        return [Sample(labels, float(value), name) for labels, value in source.get(name, ())
                if self.matches(labels)]


@dataclass
class Negate(Node):
    expr: Node
    is_vector: bool = True

    def metric_names(self) -> set[str]:
        return self.expr.metric_names()

    def eval(self, source: SampleSource) -> Value:
        value = self.expr.eval(source)
        if isinstance(value, float):
            return -value
        return [Sample(s.labels, -s.value) for s in value]


def _div(a: float, b: float) -> float:
    if b == 0:
        if a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b


def _mod(a: float, b: float) -> float:
    if b == 0 or math.isinf(a) or math.isnan(a) or math.isnan(b):
        return math.nan
    return math.fmod(a, b)


def _pow(a: float, b: float) -> float:
    try:
        return math.pow(a, b)
    except (OverflowError, ValueError):
        return math.inf if a > 0 else math.nan


ARITHMETIC: dict[str, Callable[[float, float], float]] = {
    "+": operator.add, "-": operator.sub, "*": operator.mul, "/": _div, "%": _mod, "^": _pow,
}
COMPARISON: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">": operator.gt, "<": operator.lt,
    ">=": operator.ge, "<=": operator.le,
}
SET_OPS = ("and", "or", "unless")


@dataclass
class Matching:
    """Vector matching: on(labels) when `on`, else ignoring(labels) (empty: all labels).

    `card` is one-to-one, many-to-one (group_left) or one-to-many (group_right);
    `include` are the labels group_left/group_right copy from the "one" side.
    """

    on: bool = False
    labels: tuple[str, ...] = ()
    card: str = "one-to-one"
    include: tuple[str, ...] = ()

    def signature(self, labels: Mapping[str, str]) -> Signature:
        """The match key of a sample's labels (which never include __name__)."""
        if self.on:
            return frozenset((k, labels.get(k, "")) for k in self.labels)
        if not self.labels and not self.include:
            return frozenset(labels.items())
        kept = dict(labels)
        for k in (*self.labels, *self.include):
            kept.pop(k, None)
        return frozenset(kept.items())


@dataclass
class Binary(Node):
    op: str
    lhs: Node
    rhs: Node
    return_bool: bool = False
    matching: Matching = field(default_factory=Matching)
    is_vector: bool = True

    def metric_names(self) -> set[str]:
        return self.lhs.metric_names() | self.rhs.metric_names()

    def _apply(self, a: float, b: float) -> float | None:
        """The result value, or None when a filtering comparison drops the sample."""
        if self.op in ARITHMETIC:
            return ARITHMETIC[self.op](a, b)
        ok = COMPARISON[self.op](a, b)
        if self.return_bool:
            return 1.0 if ok else 0.0
        return a if ok else None

    def _keeps_name(self) -> bool:
        return self.op in COMPARISON and not self.return_bool

    def eval(self, source: SampleSource) -> Value:
        lhs = self.lhs.eval(source)
        rhs = self.rhs.eval(source)
        if self.op in SET_OPS:
            assert isinstance(lhs, list) and isinstance(rhs, list)
            return self._set_op(lhs, rhs)
        if isinstance(lhs, float) and isinstance(rhs, float):
            value = self._apply(lhs, rhs)
            return math.nan if value is None else value
        if isinstance(lhs, list) and isinstance(rhs, list):
            return self._vector_vector(lhs, rhs)
        out: Vector = []
        keep_name = self._keeps_name()
        if isinstance(lhs, list):
            assert isinstance(rhs, float)
            for s in lhs:
                value = self._apply(s.value, rhs)
                if value is not None:
                    out.append(Sample(s.labels, value, s.name if keep_name else None))
        else:
            assert isinstance(rhs, list)
            for s in rhs:
                value = self._apply(lhs, s.value)
                if value is not None:
                    # `1 < x` keeps the vector's value when filtering, as Prometheus does.
                    if keep_name:
                        value = s.value
                    out.append(Sample(s.labels, value, s.name if keep_name else None))
        return out

    def _vector_vector(self, lhs: Vector, rhs: Vector) -> Vector:
        """Prometheus's vector matching: one-to-one, or group_left/group_right where each
        sample of the "many" side takes the `include` labels of its one match."""
        matching = self.matching
        signature = matching.signature
        grouped = matching.card != "one-to-one"
        many_is_left = matching.card != "one-to-many"
        one, many = (rhs, lhs) if many_is_left else (lhs, rhs)
        ones: dict[Signature, Sample] = {}
        for s in one:
            sig = signature(s.labels)
            if sig in ones:
                raise EvaluationError(
                    f"many-to-many matching not allowed: duplicate series on the "
                    f"{'right' if many_is_left else 'left'} of {self.op!r} for {dict(sig)}"
                )
            ones[sig] = s
        seen: set[Signature] = set()
        results: set[frozenset[tuple[str, str]]] = set()
        out: Vector = []
        keep_name = self._keeps_name()
        for s in many:
            sig = signature(s.labels)
            match = ones.get(sig)
            if match is None:
                continue
            if not grouped:
                if sig in seen:
                    raise EvaluationError(
                        f"found duplicate series for the match group {dict(sig)} on the left "
                        f"of {self.op!r}; use an aggregation to make it unique"
                    )
                seen.add(sig)
            a, b = (s.value, match.value) if many_is_left else (match.value, s.value)
            value = self._apply(a, b)
            if value is None:
                continue
            labels: Mapping[str, str] = s.labels
            name = s.name if keep_name else None
            if grouped:
                copied = dict(labels)
                for k in matching.include:
                    if match.labels.get(k):
                        copied[k] = match.labels[k]
                    else:
                        copied.pop(k, None)
                labels = copied
                key = frozenset(labels.items())
                if key in results:
                    raise EvaluationError(
                        f"multiple matches for labels {dict(labels)}: grouping labels must "
                        f"ensure unique matches"
                    )
                results.add(key)
            elif matching.on:  # Prometheus keeps only the on() labels, not the name
                labels, name = {k: v for k, v in labels.items() if k in matching.labels}, None
            elif matching.labels:
                labels = {k: v for k, v in labels.items() if k not in matching.labels}
            out.append(Sample(labels, value, name))
        return out

    def _set_op(self, lhs: Vector, rhs: Vector) -> Vector:
        signature = self.matching.signature
        sigs = {signature(s.labels) for s in rhs}
        if self.op == "and":
            return [s for s in lhs if signature(s.labels) in sigs]
        if self.op == "unless":
            return [s for s in lhs if signature(s.labels) not in sigs]
        left_sigs = {signature(s.labels) for s in lhs}
        return lhs + [s for s in rhs if signature(s.labels) not in left_sigs]


def _sum(values: list[float]) -> float:
    try:
        return math.fsum(values)
    except (ValueError, OverflowError):  # inf + -inf, or overflow: IEEE addition decides
        return sum(values)


def _extreme(pick: Callable[[Iterable[float]], float]) -> Callable[[list[float]], float]:
    def aggregate(values: list[float]) -> float:
        # Prometheus: NaN loses to any number, and is the result only when all are NaN.
        numbers = [v for v in values if not math.isnan(v)]
        return pick(numbers) if numbers else math.nan

    return aggregate


AGGREGATIONS: dict[str, Callable[[list[float]], float]] = {
    "sum": _sum,
    "min": _extreme(min),
    "max": _extreme(max),
    "avg": lambda values: _sum(values) / len(values),
    "count": lambda values: float(len(values)),
}


@dataclass
class Aggregate(Node):
    op: str
    expr: Node
    by: bool = True
    labels: tuple[str, ...] = ()
    is_vector: bool = True

    def metric_names(self) -> set[str]:
        return self.expr.metric_names()

    def eval(self, source: SampleSource) -> Value:
        value = self.expr.eval(source)
        assert isinstance(value, list)
        groups: dict[Signature, list[float]] = {}
        by, names = self.by, self.labels
        for s in value:
            labels = s.labels
            if by:
                key = frozenset((k, labels[k]) for k in names if labels.get(k, ""))
            elif names:
                kept = dict(labels)  # dict copy + pops run in C, unlike a filtering genexpr
                for k in names:
                    kept.pop(k, None)
                key = frozenset(kept.items())
            else:
                key = frozenset(labels.items())
            groups.setdefault(key, []).append(s.value)
        fn = AGGREGATIONS[self.op]
        return [Sample(dict(key), fn(values)) for key, values in groups.items()]


def _match_op(op: pp.MatchOp) -> str:
    # MatchOp is not hashable, so compare instead of looking it up.
    if op == pp.MatchOp.Equal:
        return "="
    if op == pp.MatchOp.NotEqual:
        return "!="
    return "=~" if op == pp.MatchOp.Re else "!~"


def _op_name(token: object) -> str:
    return str(token).strip()


class _Compiler:
    """Turns promql-parser's AST into nodes, refusing what is outside the subset."""

    def compile(self, expr: pp.Expr) -> Node:
        if isinstance(expr, pp.ParenExpr):
            return self.compile(expr.expr)
        if isinstance(expr, pp.NumberLiteral):
            return Number(float(expr.val))
        if isinstance(expr, pp.VectorSelector):
            return self.selector(expr)
        if isinstance(expr, pp.UnaryExpr):
            inner = self.compile(expr.expr)
            if not inner.is_vector:
                assert isinstance(inner, Number)
                return Number(-inner.value)
            return Negate(inner)
        if isinstance(expr, pp.BinaryExpr):
            return self.binary(expr)
        if isinstance(expr, pp.AggregateExpr):
            return self.aggregate(expr)
        if isinstance(expr, pp.Call):
            raise UnsupportedQuery(
                f"function {expr.func.name}() is outside the supported subset (metricsd "
                "evaluates current values only: selectors, comparisons, arithmetic, "
                "sum/min/max/avg/count, and/or/unless)"
            )
        if isinstance(expr, pp.MatrixSelector):
            raise UnsupportedQuery(
                f"range selector {expr} needs history; metricsd evaluates current values only"
            )
        if isinstance(expr, pp.SubqueryExpr):
            raise UnsupportedQuery("subqueries need history; metricsd evaluates current values")
        if isinstance(expr, pp.StringLiteral):
            raise UnsupportedQuery("string literals are not supported")
        raise UnsupportedQuery(f"{type(expr).__name__} is outside the supported subset")

    def selector(self, expr: pp.VectorSelector) -> Selector:
        if expr.offset is not None:
            raise UnsupportedQuery(f"offset in {expr} needs history; not supported")
        if expr.at is not None:
            raise UnsupportedQuery(f"@ modifier in {expr} needs history; not supported")
        if expr.matchers.or_matchers:
            raise UnsupportedQuery(f"'or' inside the braces of {expr} is not supported")
        name = expr.name
        matchers: list[tuple[str, str, str | re.Pattern[str]]] = []
        for m in expr.matchers.matchers:
            op = _match_op(m.op)
            if m.name == NAME:
                if op != "=" or (name is not None and name != m.value):
                    raise UnsupportedQuery(
                        f"{expr}: select the metric by its exact name, not by __name__ {op}"
                    )
                name = m.value
                continue
            if op in ("=~", "!~"):
                try:
                    matchers.append((m.name, op, re.compile(m.value)))
                except re.error as exc:
                    raise UnsupportedQuery(f"{expr}: invalid regular expression: {exc}") from None
            else:
                matchers.append((m.name, op, m.value))
        if not name:
            raise UnsupportedQuery(f"{expr}: a selector must name its metric")
        return Selector(name, matchers)

    def binary(self, expr: pp.BinaryExpr) -> Node:
        op = _op_name(expr.op)
        lhs, rhs = self.compile(expr.lhs), self.compile(expr.rhs)
        modifier = expr.modifier
        return_bool = bool(modifier and modifier.return_bool)
        if op not in ARITHMETIC and op not in COMPARISON and op not in SET_OPS:
            raise UnsupportedQuery(f"operator {op!r} is outside the supported subset")
        matching = Matching()
        if modifier is not None:
            card = modifier.card
            grouping = ("many-to-one" if card == pp.VectorMatchCardinality.ManyToOne
                        else "one-to-many" if card == pp.VectorMatchCardinality.OneToMany
                        else None)
            if grouping is not None and op in SET_OPS:
                raise UnsupportedQuery(f"group modifiers cannot be used with {op!r}")
            fill = modifier.fill_values
            if fill is not None and (fill.lhs is not None or fill.rhs is not None):
                raise UnsupportedQuery("fill values in vector matching are not supported")
            if modifier.matching is not None:
                matching = Matching(
                    on=modifier.matching.type == pp.LabelModifierType.Include,
                    labels=tuple(modifier.matching.labels),
                )
            if grouping is not None:
                matching.card = grouping
                matching.include = tuple(modifier.group_labels or ())
        if op in SET_OPS and not (lhs.is_vector and rhs.is_vector):
            raise UnsupportedQuery(f"{op!r} needs instant vectors on both sides")
        node = Binary(op, lhs, rhs, return_bool, matching)
        node.is_vector = lhs.is_vector or rhs.is_vector
        return node

    def aggregate(self, expr: pp.AggregateExpr) -> Node:
        op = _op_name(expr.op)
        if op not in AGGREGATIONS:
            raise UnsupportedQuery(
                f"aggregation {op}() is outside the subset (sum, min, max, avg, count)"
            )
        inner = self.compile(expr.expr)
        if not inner.is_vector:
            raise UnsupportedQuery(f"{op}() needs an instant vector")
        modifier = expr.modifier
        if modifier is None:
            return Aggregate(op, inner, by=True, labels=())
        by = modifier.type == pp.AggModifierType.By
        return Aggregate(op, inner, by=by, labels=tuple(modifier.labels))


@dataclass(frozen=True)
class Query:
    """A compiled alert expression: its source, the metric names it reads, and the tree."""

    source: str
    root: Node
    names: frozenset[str]

    def evaluate(self, source: SampleSource) -> Vector:
        value = self.root.eval(source)
        assert isinstance(value, list)
        return value


def compile_query(text: str) -> Query:
    """Parse and compile; raise UnsupportedQuery with a reason the rule author can act on."""
    try:
        ast = pp.parse(text)
    except ValueError as exc:
        raise UnsupportedQuery(f"invalid PromQL: {exc}") from None
    root = _Compiler().compile(ast)
    if not root.is_vector:
        raise UnsupportedQuery("the expression must return an instant vector, not a scalar")
    return Query(text, root, frozenset(root.metric_names()))
