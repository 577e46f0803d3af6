"""Static assets served by the app: read once, named by the hash of their content, with integrity hashes."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from importlib import resources

CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8", ".html": "text/html; charset=utf-8",
    ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".txt": "text/plain; charset=utf-8",
    ".map": "application/json",
}
IMMUTABLE = "public, max-age=31536000, immutable"


def integrity(body: bytes) -> str:
    """The Subresource Integrity value of a body (sha384, as browsers check it)."""
    return "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()


def content_type(name: str) -> str:
    """The media type of an asset by its extension."""
    dot = name.rfind(".")
    return CONTENT_TYPES.get(name[dot:] if dot >= 0 else "", "application/octet-stream")


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    media_type: str
    integrity: str
    etag: str


def make_asset(name: str, body: bytes) -> Asset:
    """An asset with its media type, integrity hash and a strong ETag."""
    return Asset(name=name, body=body, media_type=content_type(name), integrity=integrity(body),
                 etag='"' + hashlib.sha256(body).hexdigest()[:32] + '"')


@dataclass(frozen=True)
class Bundle:
    """A folder of files served under one build id: the hash of all their names and contents together."""

    build: str
    assets: dict[str, Asset]

    def get(self, name: str) -> Asset | None:
        return self.assets.get(name)


def load_bundle(package: str, folder: str, *, exclude: frozenset[str] = frozenset()) -> Bundle:
    """Read every file of ``package/folder`` (flat) into a bundle; the build id changes whenever any file does."""
    root = resources.files(package) / folder
    assets: dict[str, Asset] = {}
    digest = hashlib.sha256()
    for entry in sorted(root.iterdir(), key=lambda e: e.name):
        if not entry.is_file() or entry.name in exclude or entry.name.startswith("."):
            continue
        body = entry.read_bytes()
        assets[entry.name] = make_asset(entry.name, body)
        digest.update(entry.name.encode() + b"\0" + hashlib.sha256(body).digest())
    return Bundle(build=digest.hexdigest()[:16], assets=assets)
