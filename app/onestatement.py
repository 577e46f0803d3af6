"""One statement, one round trip: a data-modifying CTE assembled from parts, run on a bare driver connection.

A fast path that knows every row it will write builds them as ORM objects (so each column's value is exactly
what the ORM would send: the same defaults, the same JSON encoding) and sends them in ONE statement with the
guards that make it safe to have decided from an earlier read: guarded updates return their rows, and the final
``SELECT`` checks every guard. A guard that fails raises inside the statement (``commerce_fast_abort``, from
migration 0034), so the statement, which is its own transaction, writes nothing; the caller then takes its
ordinary path, which gives the ordinary answer. Packages add their parts to the statement of another through
inline subscribers (app/events.py), so the statement costs no extra round trip for them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase

ABORT_PREFIX = "commerce_fast_path:"
M = TypeVar("M", bound=DeclarativeBase)


@dataclass(frozen=True)
class _Column:
    name: str
    attribute: str
    cast: str
    bind: Callable[[Any], Any] | None
    default: Any
    computed: bool  # a Python-side default the ORM computes (``default=list``): the fast path sets it itself
    omit_when_none: bool  # the database fills it (identity, server default)


_COLUMNS: dict[tuple[type[Any], str], list[_Column]] = {}


def _columns(model: type[DeclarativeBase], dialect: Dialect) -> list[_Column]:
    key = (model, dialect.name)
    cached = _COLUMNS.get(key)
    if cached is not None:
        return cached
    mapper = inspect(model)
    out = []
    for column in mapper.local_table.columns:
        prop = mapper.get_property_by_column(column)
        default = column.default.arg if column.default is not None and column.default.is_scalar else None
        out.append(_Column(name=column.name, attribute=prop.key, cast=column.type.compile(dialect=dialect),
                           bind=column.type.bind_processor(dialect), default=default,
                           computed=column.default is not None and not column.default.is_scalar,
                           omit_when_none=column.server_default is not None or column.identity is not None
                           or (column.primary_key and column.autoincrement is True)))
    _COLUMNS[key] = out
    return out


class Statement:
    """Parameters, CTEs and guards of one statement (``$n`` parameters with explicit casts)."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self.args: list[Any] = []
        self._ctes: list[str] = []
        self._guards: list[tuple[str, str]] = []
        self._touch: list[str] = []
        self._names: set[str] = set()
        self._outputs: list[str] = []

    def param(self, value: Any, cast: str) -> str:
        """A placeholder for ``value`` (already in the driver's terms)."""
        self.args.append(value)
        return f"${len(self.args)}::{cast}"

    def name(self, stem: str) -> str:
        """A CTE name not used yet in this statement."""
        name, n = f"w_{stem}", 1  # prefixed: a stem may be a reserved word ("grant")
        while name in self._names:
            n += 1
            name = f"w_{stem}_{n}"
        self._names.add(name)
        return name

    def cte(self, stem: str, sql: str, *, evaluate: bool = False, materialized: bool = False) -> str:
        """Add ``name AS (sql)``; returns the name. A data-modifying CTE always runs; a plain ``SELECT`` only when
        something reads it, so ``evaluate`` makes the final ``SELECT`` read it (e.g. ``pg_notify`` calls)."""
        name = self.name(stem)
        self._ctes.append(f"{name} AS {'MATERIALIZED ' if materialized else ''}({sql})")
        if evaluate:
            self._touch.append(name)
        return name

    def guard(self, condition: str, reason: str, *, first: bool = False) -> None:
        """``condition`` (SQL, true when all is well) must hold, or the statement writes nothing. Guards are
        checked in order; ``first`` puts this one before every other (a guard that reads no CTE of the statement,
        checked first, refuses before any of its writes ran)."""
        assert reason.replace("_", "").isalnum()
        if first:
            self._guards.insert(0, (condition, reason))
        else:
            self._guards.append((condition, reason))

    def output(self, sql: str) -> None:
        """One more column of the final ``SELECT`` (after ``ok``), e.g. something read beside the writes."""
        self._outputs.append(sql)

    def insert(self, stem: str, rows: Sequence[DeclarativeBase], *, suffix: str = "") -> str:
        """``INSERT`` the new rows (one table: ORM objects or ``plain`` ones) with the values the ORM would send;
        returns the CTE name."""
        assert rows, "nothing to insert"
        model = type(rows[0])
        assert all(type(r) is model for r in rows)
        columns = _columns(model, self.dialect)
        values = [[_value(c, row.__dict__) for c in columns] for row in rows]  # new rows: every value is there
        used = [i for i, c in enumerate(columns) if not (c.omit_when_none and all(v[i] is None for v in values))]
        names = ", ".join(columns[i].name for i in used)
        param = self.param
        tuples = ", ".join("(" + ", ".join([param(v[i], columns[i].cast) for i in used]) + ")" for v in values)
        table: str = model.__tablename__
        return self.cte(stem, f"INSERT INTO {table} ({names}) VALUES {tuples} {suffix}".rstrip())

    def sql(self) -> str:
        """The statement: its CTEs, then one ``SELECT`` that checks the guards in order."""
        checks = "".join(f" WHEN NOT ({condition}) THEN commerce_fast_abort('{reason}')"
                         for condition, reason in self._guards)
        touched = "".join(f" AND (SELECT count(*) FROM {name}) >= 0" for name in self._touch)
        outputs = "".join(f", {sql}" for sql in self._outputs)
        return (f"WITH {', '.join(self._ctes)} SELECT CASE{checks} ELSE true END{touched} AS ok{outputs}"
                if self._guards else f"WITH {', '.join(self._ctes)} SELECT true{touched} AS ok{outputs}")


def _value(column: _Column, values: dict[str, Any]) -> Any:
    value = values.get(column.attribute)
    if value is None and column.default is not None:
        value = column.default
    assert value is not None or not column.computed, f"{column.name}: set it (the ORM would compute it)"
    if value is not None and column.bind is not None:
        value = column.bind(value)
    return value


_ATTRIBUTES: dict[type[Any], frozenset[str]] = {}


def plain(model: type[M], **values: Any) -> M:
    """A new row of ``model`` for a statement's ``insert``: read like an ORM object (its attributes are plain
    values, the columns not given None) but made without the ORM's instrumentation, which cost more than the
    rest of building an order's rows. It has no instance state: never add it to a session, and change it only
    with ``assign``."""
    names = _ATTRIBUTES.get(model)
    if names is None:
        names = _ATTRIBUTES[model] = frozenset(p.key for p in inspect(model).column_attrs)
    if not names.issuperset(values):
        raise TypeError(f"{model.__name__} has no {sorted(set(values) - names)}")
    row = model.__new__(model)
    row.__dict__.update(dict.fromkeys(names), **values)
    return row


def assign(row: Any, **values: Any) -> None:
    """Set attributes of a ``plain`` row (the ORM's instrumentation would ask for the instance state it does not
    have) or of an ORM object."""
    if "_sa_instance_state" in row.__dict__:
        for name, value in values.items():
            setattr(row, name, value)
    else:
        row.__dict__.update(values)


def aborted_because(exc: BaseException) -> str | None:
    """The guard that refused the statement (None: it failed for another reason)."""
    message = str(exc)
    return message.split(ABORT_PREFIX, 1)[1].strip() if ABORT_PREFIX in message else None


def select_list(alias: str, model: type[DeclarativeBase], dialect: Dialect) -> str:
    """``alias.column, ...`` for every column of ``model``'s table (read back with ``load``)."""
    return ", ".join(f"{alias}.{c.name}" for c in _columns(model, dialect))


_RESULTS: dict[tuple[type[Any], str], list[tuple[str, Callable[[Any], Any] | None]]] = {}


def load(model: type[DeclarativeBase], values: Sequence[Any], dialect: Dialect) -> Any:
    """A ``plain`` ``model`` (read only) from a row's values in ``select_list`` order, decoded as the ORM decodes
    them."""
    key = (model, dialect.name)
    processors = _RESULTS.get(key)
    if processors is None:
        table = inspect(model).local_table
        processors = [(c.attribute, table.c[c.name].type.result_processor(dialect, None))
                      for c in _columns(model, dialect)]
        _RESULTS[key] = processors
    assert len(values) == len(processors)
    return plain(model, **{attribute: (process(v) if process is not None and v is not None else v)
                           for (attribute, process), v in zip(processors, values, strict=True)})
