"""Helpers for the ingest tests: tiny images drawn with Pillow, broken files of each kind,
and an HTTP server on loopback that records every request it gets.

Start the server in a test module's fixture: ``with serve_http() as served: yield served``.
"""

from __future__ import annotations

import hashlib
import io
import random
import struct
import threading
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from PIL import Image


def image_bytes(
    size: tuple[int, int] = (64, 48),
    fmt: str = "JPEG",
    seed: str = "",
    orientation: int | None = None,
) -> bytes:
    """A small image whose colour depends on `seed`, so different seeds differ in bytes."""
    digest = hashlib.sha256(seed.encode()).digest()
    im = Image.new("RGB", size, (digest[0], digest[1], digest[2]))
    im.putpixel((0, 0), (digest[3], digest[4], digest[5]))
    out = io.BytesIO()
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        im.save(out, fmt, exif=exif)
    else:
        im.save(out, fmt)
    return out.getvalue()


def write_image(path: Path, size: tuple[int, int] = (64, 48), **kwargs: object) -> Path:
    """Write an image named `path` (format from its extension) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".png": "PNG", ".webp": "WEBP", ".gif": "GIF"}.get(path.suffix.lower(), "JPEG")
    path.write_bytes(image_bytes(size, fmt, seed=str(path), **kwargs))  # type: ignore[arg-type]
    return path


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid, tiny PNG that declares `width` x `height` pixels in its header."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def truncated_jpeg(seed: str = "truncated") -> bytes:
    """The first half of a JPEG: its header reads fine, its pixels do not."""
    data = image_bytes((64, 48), "JPEG", seed=seed)
    return data[: len(data) // 2]


def noisy_png(size: tuple[int, int] = (128, 128)) -> bytes:
    """A PNG that does not compress, to exceed a byte limit with few pixels."""
    im = Image.frombytes("RGB", size, random.Random(0).randbytes(size[0] * size[1] * 3))
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


@dataclass
class Served:
    """The running server: its base URL, what it serves, and the requests it got."""

    base_url: str
    port: int
    files: dict[str, bytes] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)  # (path, Host header)

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"


@contextmanager
def serve_http() -> Iterator[Served]:
    """Run an HTTP server on 127.0.0.1 (a free port) while the block runs."""
    served = Served(base_url="", port=0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            served.requests.append((self.path, self.headers.get("Host", "")))
            if self.path in served.redirects:
                self.send_response(302)
                self.send_header("Location", served.redirects[self.path])
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif self.path == "/stream-big":
                # No Content-Length: the size cap must stop the read itself.
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                for _ in range(64):
                    self.wfile.write(b"\0" * 1024)
            elif self.path in served.files:
                body = served.files[self.path]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    served.port = server.server_address[1]
    served.base_url = f"http://127.0.0.1:{served.port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def s3_bucket_ensure(client: Any, name: str) -> str:
    """Create a bucket on the test S3 server unless an earlier test did; returns its name."""
    exists = (client.exceptions.BucketAlreadyOwnedByYou, client.exceptions.BucketAlreadyExists)
    with suppress(*exists):
        client.create_bucket(Bucket=name)
    return name
