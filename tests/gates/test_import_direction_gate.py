"""Import-direction gate: dependencies point one way, read from the source itself (AST, lazy imports included).

    app kernel  <-  catalog  <-  entitlements  <-  billing  <-  suggest

A package may import its own layer and the layers below it, never one above; its HTTP adapters (route
modules, ``app/api``) keep its place, and no domain module imports an adapter. Web pages (``web/``) sit above
every package. The app's wiring (the factory, the CLI, the demo, the table registry, the event subscriptions)
knows everyone, and nothing but the wiring imports it; the development tools (``stripe_fake/``) are imported
by the wiring only. A lower package tells a higher one what happened by publishing a domain event
(app/events.py), which the wiring subscribes the higher package to.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

LAYERS = {"app": 0, "catalog": 1, "entitlements": 2, "billing": 3, "suggest": 4}
ADAPTER_PACKAGES = ("web",)
TOOL_PACKAGES = ("stripe_fake",)
WIRING = frozenset({"app.asgi", "app.cli", "app.demo", "app.models", "app.stripe_wiring", "app.wiring",
                    "app.jobs.wiring"})  # the scheduled jobs call every package's use cases
# the local Stripe's own request router is not one of our HTTP adapters (the fake is a development tool)
NOT_ADAPTERS = ("stripe_fake.",)
PRODUCT = (*LAYERS, *ADAPTER_PACKAGES, *TOOL_PACKAGES)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str
    line: int


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(dotted: str) -> bool:
    base = ROOT.joinpath(*dotted.split("."))
    return base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()


def imports_of(path: Path) -> list[Edge]:
    """Every import in the file, at any depth (function-level and TYPE_CHECKING imports count too)."""
    source = module_name(path)
    package = source.split(".") if path.name == "__init__.py" else source.split(".")[:-1]
    rel = str(path.relative_to(ROOT))
    edges = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
        if isinstance(node, ast.Import):
            edges += [Edge(source, alias.name, rel, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            for alias in node.names:
                full = f"{module}.{alias.name}"
                edges.append(Edge(source, full if is_module(full) else module, rel, node.lineno))
    return [e for e in edges if e.target.split(".")[0] in PRODUCT]


def product_edges() -> list[Edge]:
    files = [p for top in PRODUCT if (ROOT / top).is_dir() for p in sorted((ROOT / top).rglob("*.py"))]
    return [edge for path in files for edge in imports_of(path)]


def is_adapter(module: str) -> bool:
    parts = module.split(".")
    if module.startswith(NOT_ADAPTERS):
        return False
    return (parts[0] in ADAPTER_PACKAGES or module.startswith("app.api") or "routes" in parts
            or parts[-1].endswith("_routes"))


def role(module: str) -> str:
    top = module.split(".")[0]
    if module in WIRING:
        return "wiring"
    if top in TOOL_PACKAGES:
        return "tool"
    if is_adapter(module):
        return "adapter"
    return "domain"


def violation(edge: Edge) -> str | None:
    """Why this import runs against the order, or None when it is allowed."""
    src, dst = role(edge.source), role(edge.target)
    if src == "wiring":
        return None
    if dst == "wiring":
        return "only the wiring imports the wiring"
    if dst == "tool" and src == "tool":
        return None  # a tool's own modules
    if dst == "tool":
        return "development tools are imported by the wiring only"
    if src == "tool":
        return None if LAYERS.get(edge.target.split(".")[0]) == 0 and dst == "domain" else \
            "a development tool may use the app kernel only"
    if edge.source.split(".")[0] in ADAPTER_PACKAGES:
        return None
    if edge.target.split(".")[0] in ADAPTER_PACKAGES:
        return "web pages sit above every package"
    if dst == "adapter" and src == "domain":
        return "a domain module never imports an HTTP adapter"
    source_layer, target_layer = LAYERS[edge.source.split(".")[0]], LAYERS[edge.target.split(".")[0]]
    if target_layer > source_layer:
        return "imports a higher layer (publish a domain event instead)"
    return None


def test_every_import_points_down_the_stack() -> None:
    edges = product_edges()
    assert len(edges) > 300, "the gate found too few imports: is it reading the packages?"
    problems = sorted({f"{e.path}:{e.line}: {e.source} -> {e.target}: {why}"
                       for e in edges if (why := violation(e)) is not None})
    assert problems == [], "imports against app <- catalog <- entitlements <- billing <- suggest:\n" + \
        "\n".join(problems)


def test_the_gate_reports_an_import_against_the_order() -> None:
    up = Edge("catalog.service._live", "entitlements", "catalog/service/_live.py", 1)
    lazy_kernel = Edge("app.settings", "suggest.scoring", "app/settings.py", 1)
    into_routes = Edge("billing.service._orders", "billing.routes", "billing/service/_orders.py", 1)
    assert violation(up) and violation(lazy_kernel) and violation(into_routes)
    assert violation(Edge("billing.service._quotes", "app.asgi", "billing/service/_quotes.py", 1))
    assert violation(Edge("billing.service._payments", "stripe_fake.app", "billing/service/_payments.py", 1))
    assert violation(Edge("stripe_fake.app", "billing.models", "stripe_fake/app.py", 1))
    assert violation(Edge("catalog.routes", "entitlements", "catalog/routes.py", 1))  # routes keep their place
    assert violation(Edge("billing.orders_routes", "suggest", "billing/orders_routes.py", 1))
    assert violation(Edge("suggest.service", "billing.service", "suggest/service.py", 1)) is None
    assert violation(Edge("entitlements.routes", "catalog.schemas", "entitlements/routes.py", 1)) is None
    assert violation(Edge("web.admin", "suggest.service", "web/admin.py", 1)) is None  # pages above everything
    assert violation(Edge("billing.routes", "web.admin", "billing/routes.py", 1))
    assert violation(Edge("app.asgi", "suggest.routes", "app/asgi.py", 1)) is None  # the wiring knows everyone


def test_billing_catalog_entitlements_and_the_kernel_import_without_suggest() -> None:
    """Deleting suggest/ must leave everything below it importable (dynamic imports included)."""
    script = textwrap.dedent("""
        import importlib, pkgutil, sys
        from importlib.abc import MetaPathFinder

        class NoSuggest(MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "suggest":
                    raise ImportError(f"suggest is gone ({name})")
                return None

        sys.meta_path.insert(0, NoSuggest())
        WIRING = {WIRING!r}
        count = 0
        for top in ("app", "catalog", "entitlements", "billing"):
            package = importlib.import_module(top)
            for info in pkgutil.walk_packages(package.__path__, top + "."):
                if info.name not in WIRING:
                    importlib.import_module(info.name)
                    count += 1
        print(count)
    """).replace("{WIRING!r}", repr(sorted(WIRING)))
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.strip()) > 80


def _first_imports() -> list[str]:
    """Modules a process may import before any other of ours: the kernel's (every package builds on them), each
    package, and the entry points (the wiring, the ASGI targets of granian, the development tools)."""
    kernel = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                    for p in (ROOT / "app").rglob("*.py"))
    return [*kernel, *LAYERS, "web.demo_host.app", "stripe_fake.asgi", "stripe_fake.server", *sorted(WIRING)]


def test_each_kernel_module_package_and_entry_point_imports_first_in_a_fresh_interpreter() -> None:
    """An import cycle that only bites in one order (``import app.events`` failed while the suite, which happened
    to import the accounts package first, passed, and ``commerce serve`` would not start) shows up here: each
    module is imported first in a fork of an interpreter that holds only third-party libraries."""
    script = textwrap.dedent("""
        import importlib, os, sys
        for lib in ("sqlalchemy", "sqlalchemy.ext.asyncio", "litestar", "msgspec", "asyncpg", "stripe", "httpx",
                    "click", "structlog", "prometheus_client", "alembic"):
            importlib.import_module(lib)
        failed = []
        for name in sys.argv[1:]:
            pid = os.fork()
            if pid == 0:
                try:
                    importlib.import_module(name)
                except BaseException as exc:
                    sys.stderr.write(f"{name}: {exc!r}\\n")
                    os._exit(1)
                os._exit(0)
            if os.waitpid(pid, 0)[1]:
                failed.append(name)
        print(len(sys.argv) - 1, failed)
    """)
    modules = _first_imports()
    done = subprocess.run([sys.executable, "-c", script, *modules], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == f"{len(modules)} []", done.stderr[-3000:]
