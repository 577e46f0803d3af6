"""The curl examples of the docs, checked against the app's own OpenAPI document.

A vendor integrates from the docs: a curl example that names a route that moved, a field that was renamed or a
query parameter that no longer exists fails for the reader, while every test of the code still passes. This module
reads every ``curl`` in the shell blocks of README.md and docs/*.md (continuation lines joined, shell arrays such as
``auth=(...)`` and ``$BASE`` expanded) into method, path, query, headers and body, and ``violations`` says what the
document does not accept: no operation for the method and path, a query parameter the operation does not declare,
a JSON body its schema refuses (bodies are closed: an unknown field is an error), a required body or
``Idempotency-Key`` left out. A body with a ``...`` placeholder is checked for its route only.

    python -m tests.gates.doc_examples      # lists every curl example with what is wrong with it
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import jsonschema_rs

from tests.support.contract import Contract, offline_document

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://127.0.0.1:8000"
_FENCE = re.compile(r"^```(\w*)\s*$")
_SHELLS = {"", "sh", "bash", "shell", "console"}  # an unlabelled block too: only its curl lines are read
# where the docs address this service (the Stripe fake and webhook receivers are on other ports or hosts)
_OURS = {"127.0.0.1:8000", "localhost:8000", "commerce.example.com"}
_ARRAY = re.compile(r"^(\w+)=\((.*)\)\s*$", re.S)
_DATA = {"-d", "--data", "--data-raw", "--data-binary", "--json"}
_WITH_VALUE = {"-X", "--request", "-H", "--header", "-o", "--output", "-w", "--write-out", "-u", "--user",
               "-m", "--max-time", "-A", "--user-agent", "--connect-timeout", "-e", "--referer"}


@dataclass
class Example:
    """One curl call of the docs."""

    where: str  # file:line
    method: str
    path: str
    query: list[str] = field(default_factory=list)
    headers: list[str] = field(default_factory=list)
    body: str | None = None
    target: str = ""  # the path with its query string, as written
    note: str = ""  # the comments that follow it: what the docs say it answers
    assign: tuple[str, str] | None = None  # VAR=$(curl ... | jq -r .field): the variable and the field


def _blocks(text: str, languages: frozenset[str] | set[str] = _SHELLS) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced block in one of ``languages``."""
    blocks: list[tuple[int, list[str]]] = []
    state, current, start = "out", [], 0  # state: out of a block, in a wanted block, in another one
    for n, line in enumerate(text.splitlines(), start=1):
        fence = _FENCE.match(line.strip())
        if fence is None:
            if state == "wanted":
                current.append(line)
        elif state == "out":
            state, current, start = ("wanted" if fence.group(1) in languages else "other"), [], n + 1
        else:
            if state == "wanted":
                blocks.append((start, current))
            state = "out"
    return blocks


def _commands(start: int, lines: list[str]) -> list[tuple[int, str, list[str]]]:
    """Logical commands (continuation lines joined, a quote left open carried over to the next lines), each with
    the comment lines right after it (what the docs say it answers)."""
    out: list[tuple[int, str, list[str]]] = []
    buf, first = "", start
    for n, line in enumerate(lines, start=start):
        if not buf:
            if line.lstrip().startswith("#") and out:
                out[-1][2].append(line.strip())
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            first = n
        buf = f"{buf}\n{line}" if buf else line
        if buf.endswith("\\"):
            buf = buf[:-1]
            continue
        try:
            shlex.split(buf, comments=True)
        except ValueError:  # an open quote: a JSON body over several lines
            continue
        inline = re.search(r"\s#\s(.*)$", buf.rsplit("\n", 1)[-1])
        out.append((first, buf, [inline.group(1)] if inline else []))
        buf = ""
    return out


def _expand(command: str, arrays: dict[str, list[str]], scalars: dict[str, str]) -> list[str]:
    tokens = []
    for token in shlex.split(command, comments=True):
        match = re.fullmatch(r"\$\{(\w+)\[@\]\}", token)
        if match and match.group(1) in arrays:
            tokens += arrays[match.group(1)]
            continue
        tokens.append(re.sub(r"\$\{?(\w+)\}?", lambda m: scalars.get(m.group(1), m.group(0)), token))
    return tokens


def examples(paths: list[Path] | None = None) -> list[Example]:
    """Every curl call of README.md and docs/*.md (or of ``paths``)."""
    files = paths if paths is not None else [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    found: list[Example] = []
    for path in files:
        arrays: dict[str, list[str]] = {}
        scalars: dict[str, str] = {"BASE": BASE}
        for start, lines in _blocks(path.read_text()):
            for line_no, command, note in _commands(start, lines):
                where = f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line_no}"
                stripped = command.strip()
                array = _ARRAY.match(stripped)
                if array:
                    arrays[array.group(1)] = _expand(array.group(2), arrays, scalars)
                    continue
                if "curl" not in stripped:
                    continue  # KEY=sk_... and the like: placeholders a reader fills in
                try:
                    tokens = _expand(stripped, arrays, scalars)
                except ValueError:
                    continue
                assigned = re.match(r"^(\w+)=\$\(.*\|\s*jq -r (\.\w+)\)\s*$", stripped, re.S)
                for call in _curl_calls(tokens):
                    example = _parse(where, call)
                    if example is not None:
                        example.note = " ".join(note)
                        if assigned:
                            example.assign = (assigned.group(1), assigned.group(2)[1:])
                        found.append(example)
    return found


def _curl_calls(tokens: list[str]) -> list[list[str]]:
    """The arguments of each ``curl`` in a command line (up to a pipe, ``&&``, ``;`` or ``)``)."""
    calls: list[list[str]] = []
    current: list[str] | None = None
    for token in tokens:
        if token.endswith("curl") and token.rsplit("(", 1)[-1] == "curl":
            current = []
            calls.append(current)
            continue
        if current is None:
            continue
        if token in ("|", "||", "&&", ";", ")") or token.startswith("|"):
            current = None
            continue
        current.append(token)
    return calls


def _parse(where: str, args: list[str]) -> Example | None:
    method, url, headers, body, get = None, None, [], None, False
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-X", "--request"):
            method = args[i + 1].upper()
        elif arg in ("-H", "--header"):
            headers.append(args[i + 1])
        elif arg in _DATA:
            body = args[i + 1]
            if arg == "--json":
                headers.append("content-type: application/json")
        elif arg in ("-G", "--get"):
            get = True
        elif not arg.startswith("-") and urlsplit(arg if "://" in arg else f"http://{arg}").netloc in _OURS:
            url = arg if "://" in arg else f"http://{arg}"
        if arg in _WITH_VALUE or arg in _DATA:
            i += 2
            continue
        i += 1
    if url is None:
        return None  # a URL of another service (Stripe's, a webhook receiver's)
    split = urlsplit(url)
    if method is None:
        method = "POST" if body is not None and not get else "GET"
    query = [name for name, _ in parse_qsl(split.query, keep_blank_values=True)]
    return Example(where=where, method=method, path=split.path, query=query, headers=headers, body=body,
                   target=split.path + (f"?{split.query}" if split.query else ""))


def violations(contract: Contract, example: Example) -> list[str]:
    """What in this example the OpenAPI document does not accept (empty: it would be understood)."""
    if not example.path.startswith("/v1/") or example.method in ("OPTIONS", "HEAD"):
        return []  # pages, the widget, health and metrics: not API operations; preflights are the server's
    found = contract.operation(example.method, example.path)
    label = f"{example.where}: {example.method} {example.path}"
    if found is None:
        return [f"{label}: no documented operation serves it"]
    template, op = found
    problems = []
    params = op.get("parameters", [])
    declared = {p["name"] for p in params if p["in"] == "query"}
    problems += [f"{label}: query parameter {q!r} is not one of {sorted(declared)}" for q in example.query
                 if q not in declared]
    names = {h.split(":", 1)[0].strip().lower() for h in example.headers}
    problems += [f"{label}: the required header {p['name']} is left out" for p in params
                 if p["in"] == "header" and p.get("required") and p["name"].lower() not in names]
    content = (op.get("requestBody") or {}).get("content", {})
    schema = content.get("application/json", {}).get("schema")
    if example.body is None:
        if (op.get("requestBody") or {}).get("required") and schema is not None:
            problems.append(f"{label}: the operation requires a body; the example sends none")
        return problems
    if example.body.startswith("@") or schema is None:
        return problems
    if "..." in example.body:
        return problems  # a placeholder body: its route is checked, not its fields
    try:
        document = json.loads(example.body)
    except ValueError as exc:
        return [*problems, f"{label}: the body is not JSON ({exc})"]
    validator = jsonschema_rs.Draft202012Validator({**schema, "components": contract.spec.get("components", {})})
    problems += [f"{label} ({template}): {e.message} at {'/'.join(map(str, e.instance_path)) or 'the body'}"
                 for e in validator.iter_errors(document)][:5]
    return problems


# --- the SDK's examples ---------------------------------------------------------------------------------------

_RESOURCE_LIST = re.compile(r"`(\w+)` \(((?:`\w+`(?:, )?)+)\)|`(\w+)\.(\w+)`")


@dataclass
class SdkCall:
    """One ``client.<resource>.<method>(...)`` of a Python example, or a method the guide's prose names."""

    where: str
    chain: list[str]  # attribute names after ``client``
    args: int = 0
    kwargs: list[str] = field(default_factory=list)
    awaited: bool = False
    called: bool = True


def sdk_examples(path: Path | None = None) -> tuple[list[SdkCall], list[str]]:
    """The SDK calls of docs/sdk.md's Python blocks and of its list of resources; the names its Python blocks
    import from ``commerce_sdk``."""
    import ast

    path = path or ROOT / "docs" / "sdk.md"
    text = path.read_text()
    calls: list[SdkCall] = []
    imports: list[str] = []
    name = path.name
    for start, lines in _blocks(text, {"python"}):
        try:
            tree = ast.parse("\n".join(lines))
        except SyntaxError:
            continue
        awaited = {id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Await)}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "commerce_sdk":
                imports += [alias.name for alias in node.names]
            if not isinstance(node, ast.Call):
                continue
            chain: list[str] = []
            target = node.func
            while isinstance(target, ast.Attribute):
                chain.insert(0, target.attr)
                target = target.value
            if isinstance(target, ast.Name) and target.id == "client" and chain:
                calls.append(SdkCall(where=f"{name}:{start + node.lineno - 1}", chain=chain, args=len(node.args),
                                     kwargs=[k.arg for k in node.keywords if k.arg], awaited=id(node) in awaited))
    for n, line in enumerate(text.splitlines(), start=1):
        if "## Resources" in line:
            paragraph = " ".join(text.splitlines()[n:n + 6])
            for match in _RESOURCE_LIST.finditer(paragraph.split("Every other route")[0]):
                if match.group(1):
                    for method in re.findall(r"`(\w+)`", match.group(2)):
                        calls.append(SdkCall(where=f"{name}:{n}", chain=[match.group(1), method], called=False))
                else:
                    calls.append(SdkCall(where=f"{name}:{n}", chain=[match.group(3), match.group(4)], called=False))
    return calls, imports


def sdk_violations(call: SdkCall, sync_client: Any, async_client: Any) -> list[str]:
    """What in this call the SDK does not have: an attribute, or arguments its signature refuses."""
    import inspect

    target = async_client if call.awaited else sync_client
    label = f"{call.where}: client.{'.'.join(call.chain)}"
    for attr in call.chain:
        if not hasattr(target, attr):
            return [f"{label}: {type(target).__name__} has no {attr!r}"]
        target = getattr(target, attr)
    if not call.called:
        return [] if callable(target) else [f"{label}: not a method"]
    try:
        inspect.signature(target).bind(*range(call.args), **dict.fromkeys(call.kwargs))
    except TypeError as exc:
        return [f"{label}: {exc}"]
    return []


if __name__ == "__main__":
    contract = Contract(offline_document())
    every = examples()
    for example in every:
        for problem in violations(contract, example):
            print(problem)
    print(f"{len(every)} examples")
