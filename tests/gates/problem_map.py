"""Render which problem codes each API operation can answer (app/operation_problems.py) from the code itself.

An operation can answer a problem when its handler, one of its dependencies or guards, or anything they call
raises (or builds) a ``DomainError`` subclass. This module walks the product packages' syntax trees, resolves
calls through imports, module aliases, ``self``/``cls`` and, for method calls on other objects, every method of
ours with that name (an over-approximation: a code listed may be unreachable in practice, a code answered is
never missing). The OpenAPI document declares the result per operation and status; the suite's contract check
(tests/support/contract.py) fails any answer whose code the document does not declare, so every API test also
checks this map. The gate (test_problem_map_gate.py) fails when the committed module differs from this
rendering. Regenerate with ``python -m tests.gates.problem_map --write``.
"""

from __future__ import annotations

import ast
import inspect
import re
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from litestar import Litestar

import app.asgi  # noqa: F401  (the app factory imports every package, so every error class is defined)
from app.errors import DomainError
from tests.support.contract import offline_app

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "catalog", "entitlements", "billing", "suggest")
# method names so common on library objects (sessions, dicts, clients) that a call on an unknown object
# is not taken for one of ours; a method of ours with such a name is reached through self/cls or its class
_LIBRARY_METHODS = frozenset({
    "get", "set", "add", "pop", "update", "items", "keys", "values", "append", "extend", "execute", "scalar",
    "scalars", "scalar_one", "scalar_one_or_none", "first", "one", "all", "fetch", "fetchrow", "fetchval",
    "close", "start", "stop", "run", "send", "encode", "decode", "format", "join", "split", "strip", "copy",
    "begin", "commit", "rollback", "flush", "refresh", "merge", "delete", "wait", "cancel", "result", "read",
    "write", "isoformat", "replace", "lower", "upper", "startswith", "endswith", "count", "sort", "clear",
    "setdefault", "remove", "discard", "union", "release", "acquire", "put", "post", "patch", "request",
    "__init__", "create", "list", "retrieve", "modify", "search",
})


def error_classes() -> dict[str, type[DomainError]]:
    """Every DomainError subclass the product defines, by 'module:Name'."""
    out: dict[str, type[DomainError]] = {}
    todo: list[type[DomainError]] = [DomainError]
    while todo:
        cls = todo.pop()
        out[f"{cls.__module__}:{cls.__qualname__}"] = cls
        todo.extend(cls.__subclasses__())
    return {k: v for k, v in out.items() if k.split(".")[0].split(":")[0] in PACKAGES}


@dataclass
class _Module:
    name: str
    tree: ast.Module
    imports: dict[str, str] = field(default_factory=dict)  # local name -> 'module' or 'module:attr'
    defs: set[str] = field(default_factory=set)  # top-level functions and classes
    methods: dict[str, set[str]] = field(default_factory=dict)  # class -> its methods


class CallGraph:
    """Functions of the product packages, what each calls and which error classes each raises or builds."""

    def __init__(self) -> None:
        self.modules: dict[str, _Module] = {}
        for package in PACKAGES:
            for path in sorted((ROOT / package).rglob("*.py")):
                parts = path.relative_to(ROOT).with_suffix("").parts
                name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
                self.modules[name] = self._index(name, ast.parse(path.read_text()), path.name == "__init__.py")
        self.methods_named: dict[str, set[str]] = defaultdict(set)
        for mod in self.modules.values():
            for cls, methods in mod.methods.items():
                for method in methods:
                    self.methods_named[method].add(f"{mod.name}:{cls}.{method}")
        self.errors = error_classes()
        self.calls: dict[str, set[str]] = defaultdict(set)
        self.raises: dict[str, set[str]] = defaultdict(set)
        for mod in self.modules.values():
            self._scan(mod)
        self._closure: dict[str, frozenset[str]] = {}

    def _index(self, name: str, tree: ast.Module, is_package: bool) -> _Module:
        mod = _Module(name, tree)
        package = name if is_package else name.rpartition(".")[0]
        for node in tree.body:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    mod.imports[alias.asname or alias.name.split(".")[0]] = (
                        alias.name if alias.asname else alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                    base = ".".join([*anchor, *([base] if base else [])])
                for alias in node.names:
                    mod.imports[alias.asname or alias.name] = f"{base}:{alias.name}"
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                mod.defs.add(node.name)
            elif isinstance(node, ast.ClassDef):
                mod.defs.add(node.name)
                mod.methods[node.name] = {n.name for n in node.body
                                          if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
        return mod

    def resolve(self, target: str, depth: int = 0) -> str | None:
        """'module:attr' followed through re-exports to where it is defined (a module name if it is one)."""
        if depth > 10:
            return None
        module, _, attr = target.partition(":")
        if not attr:
            return module if module in self.modules else None
        if f"{module}.{attr}" in self.modules:
            return f"{module}.{attr}"
        mod = self.modules.get(module)
        if mod is None:
            return None
        if attr in mod.defs:
            return f"{module}:{attr}"
        if attr in mod.imports:
            return self.resolve(mod.imports[attr], depth + 1)
        return None

    def _scan(self, mod: _Module) -> None:
        for node in mod.tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                self._scan_function(mod, node, f"{mod.name}:{node.name}", None)
            elif isinstance(node, ast.ClassDef):
                for item in node.body:
                    if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        self._scan_function(mod, item, f"{mod.name}:{node.name}.{item.name}", node.name)

    def _scan_function(self, mod: _Module, fn: ast.AST, key: str, cls: str | None) -> None:
        for node in ast.walk(fn):  # nested functions and lambdas count as the function's own body
            if isinstance(node, ast.Call):
                for target in self._targets(mod, node.func, cls):
                    error = self._error(target)
                    if error is not None:
                        self.raises[key].add(error)
                    else:
                        self.calls[key].add(target)
            elif isinstance(node, ast.Raise) and node.exc is not None and not isinstance(node.exc, ast.Call):
                for target in self._targets(mod, node.exc, cls):
                    error = self._error(target)
                    if error is not None:
                        self.raises[key].add(error)

    def _error(self, target: str) -> str | None:
        return target if target in self.errors else None

    def _targets(self, mod: _Module, func: ast.expr, cls: str | None) -> Iterator[str]:
        if isinstance(func, ast.Name):
            name = func.id
            if name in mod.defs:
                yield from self._callable(f"{mod.name}:{name}")
            elif name in mod.imports:
                resolved = self.resolve(mod.imports[name])
                if resolved is not None:
                    yield from self._callable(resolved)
            return
        if not isinstance(func, ast.Attribute):
            return
        attr, owner = func.attr, func.value
        if (isinstance(owner, ast.Name) and owner.id in ("self", "cls") and cls is not None
                and attr in mod.methods.get(cls, set())):
            yield f"{mod.name}:{cls}.{attr}"
            return
        dotted = _dotted(owner)
        if dotted is not None:
            head, *rest = dotted.split(".")
            base = f"{mod.name}:{head}" if head in mod.defs else mod.imports.get(head)
            resolved = self.resolve(base) if base else None
            for part in rest:
                resolved = self.resolve(f"{resolved}:{part}") if resolved and ":" not in resolved else None
            if resolved is not None:
                if ":" not in resolved:  # a module: module.function
                    found = self.resolve(f"{resolved}:{attr}")
                    if found is not None:
                        yield from self._callable(found)
                    return
                module, _, name = resolved.partition(":")
                if attr in self.modules[module].methods.get(name, set()):  # Class.method
                    yield f"{module}:{name}.{attr}"
                    return
        if attr not in _LIBRARY_METHODS:
            yield from self.methods_named.get(attr, ())

    def _callable(self, target: str) -> Iterator[str]:
        """A function, or a class: its constructor (and the class itself, if it is an error)."""
        if target in self.errors:
            yield target
            return
        module, _, name = target.partition(":")
        mod = self.modules.get(module)
        if mod is not None and name in mod.methods:
            for method in ("__init__", "__post_init__", "__call__"):
                if method in mod.methods[name]:
                    yield f"{module}:{name}.{method}"
            return
        yield target

    def errors_of(self, key: str) -> frozenset[str]:
        """Error classes ``key`` or anything it calls (transitively) raises or builds."""
        if key in self._closure:
            return self._closure[key]
        seen, todo, found = {key}, [key], set()
        while todo:
            current = todo.pop()
            found |= self.raises.get(current, set())
            for callee in self.calls.get(current, set()):
                if callee not in seen:
                    seen.add(callee)
                    todo.append(callee)
        self._closure[key] = frozenset(found)
        return self._closure[key]


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def _key(fn: Callable[..., Any]) -> str | None:
    """'module:qualname' of a function of ours; a closure counts as its outermost function."""
    fn = inspect.unwrap(fn)
    module = getattr(fn, "__module__", "") or ""
    if module.split(".")[0] not in PACKAGES:
        return None
    return f"{module}:{fn.__qualname__.split('.<locals>')[0]}"


def operation_codes(app: Litestar, graph: CallGraph | None = None) -> dict[tuple[str, str], tuple[str, ...]]:
    """(METHOD, path template) -> the problem codes its handler, dependencies and guards can raise."""
    graph = graph or CallGraph()
    out: dict[tuple[str, str], tuple[str, ...]] = {}
    for route in app.routes:
        for method, (handler, _kwargs) in getattr(route, "route_handler_map", {}).items():
            if method in ("OPTIONS", "HEAD") or not handler.include_in_schema:
                continue
            functions = [handler.fn, *handler.resolve_guards(),
                         *(p.dependency for p in handler.resolve_dependencies().values())]
            errors: set[str] = set()
            for fn in functions:
                key = _key(fn)
                if key is not None:
                    errors |= graph.errors_of(key)
            path = re.sub(r"{(\w+):\w+}", r"{\1}", route.path)
            out[(method, path)] = tuple(sorted({graph.errors[e].code for e in errors}))
    return dict(sorted(out.items()))


HEADER = '''"""Problem codes each API operation can answer beyond those of every operation (generated: do not edit).

Rendered from the code's call graph by ``python -m tests.gates.problem_map --write``; the
OpenAPI document declares them per operation and status, and the suite fails when the code and this file
disagree or when an answer carries a code its operation does not declare.
"""

from __future__ import annotations

OPERATION_PROBLEMS: dict[tuple[str, str], tuple[str, ...]] = {
'''


def render() -> str:
    lines = [HEADER]
    for (method, path), codes in operation_codes(offline_app()).items():
        lines.append(f"    ({method!r}, {path!r}): (\n")
        lines.extend(f"        {code!r},\n" for code in codes)
        lines.append("    ),\n")
    lines.append("}\n")
    return "".join(lines)


TARGET = ROOT / "app" / "operation_problems.py"

if __name__ == "__main__":
    import sys

    rendered = render()  # rendered in full first: the app being rendered imports the file being replaced
    if sys.argv[1:] == ["--write"]:
        TARGET.write_text(rendered)
    else:
        print(rendered, end="")
