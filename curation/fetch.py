"""Read ingest sources safely: local files inside the import roots, http(s) URLs that
cannot reach private networks, and s3:// objects; every read is capped in size.

Neither a local path nor an s3:// URL may reach the service's own storage (the media of
every dataset, the database files, the secret key): a curator of one dataset must not be
able to import another dataset's images, or anything else the service itself can read.

Every problem with one source raises FetchError, which ingest records as a per-item error.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
import stat
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import boto3
import requests
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from django.conf import settings
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import create_connection

MAX_REDIRECTS = 5
# Each connect or read may take NUCLEUS_FETCH_TIMEOUT; a whole download at most this many
# times that, so a server that trickles one byte per timeout cannot hold a worker forever.
TOTAL_TIMEOUT_FACTOR = 5
_CHUNK = 64 * 1024
# Bucket names as S3 and its look-alikes allow them (lower case on AWS; some servers are laxer).
_BUCKET_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}")
URL_SCHEMES = ("http", "https", "s3")


class FetchError(Exception):
    """A source that cannot be read: missing, refused, unreachable or too large."""


class PathNotAllowed(FetchError):
    """A local path outside the import roots, or inside the service's own storage."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.reason = reason


class BucketNotAllowed(FetchError):
    """An s3:// URL in the service's own media area, or in a bucket not on the allow-list."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.reason = reason


class AddressNotAllowed(FetchError):
    """A URL whose host is (or resolves to) a private, loopback or otherwise internal address."""


class TooLarge(FetchError):
    pass


def is_url(location: str) -> bool:
    return urlsplit(location).scheme.lower() in URL_SCHEMES


def read_location(location: str, *, max_bytes: int, trusted: bool = False) -> bytes:
    """Read an absolute local path, an http(s) URL or an s3:// URL, at most `max_bytes`.

    `trusted` (operator-run commands only) lifts the import-root limit on local paths.
    """
    scheme = urlsplit(location).scheme.lower()
    if scheme in ("http", "https"):
        return read_url(location, max_bytes=max_bytes)
    if scheme == "s3":
        return read_s3(location, max_bytes=max_bytes)
    if scheme:
        raise FetchError(f"{location}: unsupported URL scheme {scheme!r} (use http, https or s3)")
    return read_local(location, max_bytes=max_bytes, trusted=trusted)


# ------------------------------------------------------------------------------- local


def import_roots() -> list[Path]:
    return [Path(root).resolve() for root in settings.NUCLEUS_IMPORT_ROOTS]


def _server_path_patterns() -> list[tuple[re.Pattern[str], str]]:
    """(pattern, replacement) for each server folder a member must not see, longest first.

    Import roots become nothing (what is left is the path relative to the root, which is
    how an API caller names it); the data directory becomes `$NUCLEUS_DATA_DIR`. Roots
    are matched as configured and as resolved (through symlinks), and only as whole path
    components: /srv/import does not eat into /srv/import2.
    """
    folders: dict[str, str] = {}
    data_dir = getattr(settings, "DATA_DIR", None)
    if data_dir is not None:
        for form in {str(data_dir), str(Path(data_dir).resolve())}:
            folders[form.rstrip("/")] = "$NUCLEUS_DATA_DIR/"
    for root in settings.NUCLEUS_IMPORT_ROOTS:
        for form in {str(root), str(Path(root).resolve())}:
            folders[form.rstrip("/")] = ""
    return [
        (re.compile(re.escape(folder) + r"(?:/|(?![\w.-]))"), replacement)
        for folder, replacement in sorted(folders.items(), key=lambda f: -len(f[0]))
        if folder
    ]


def server_paths_hidden(value: Any) -> Any:
    """`value` (text, or JSON made of lists and dicts) as a dataset member may see it.

    Job parameters and errors and items' source URIs name files by their absolute path on
    the server; members see them relative to the import root (operators, staff users,
    see them whole). A root itself becomes ".".
    """
    patterns = _server_path_patterns()

    def replace(match: re.Match[str], replacement: str) -> str:
        if replacement:
            return replacement
        return "" if match.group().endswith("/") else "."

    def hide(v: Any) -> Any:
        if isinstance(v, str):
            for pattern, replacement in patterns:
                v = pattern.sub(functools.partial(replace, replacement=replacement), v)
            return v
        if isinstance(v, list):
            return [hide(x) for x in v]
        if isinstance(v, dict):
            return {k: hide(x) for k, x in v.items()}
        return v

    return hide(value)


def _protected_dirs() -> list[Path]:
    """Folders no import may read from: local media storage, wherever it is configured."""
    found = [settings.MEDIA_ROOT]
    options = settings.STORAGES.get("default", {}).get("OPTIONS", {})
    location = options.get("location")
    if "bucket_name" not in options and location and os.path.isabs(location):
        found.append(location)
    return [Path(d).resolve() for d in found]


def _protection_refusal(resolved: Path, roots: list[Path]) -> str | None:
    """Why an otherwise allowed path must not be read: it lies in the service's own files."""
    if any(resolved.is_relative_to(d) for d in _protected_dirs()):
        return "is inside the service's media storage (NUCLEUS_MEDIA_ROOT)"
    data_dir = getattr(settings, "DATA_DIR", None)
    if data_dir is not None:
        data = Path(data_dir).resolve()
        # The default import root is DATA_DIR/import: a root inside the data directory opens
        # that root only, never its siblings (pg/, secret_key, media/).
        if resolved.is_relative_to(data) and not any(
            root != data and root.is_relative_to(data) and resolved.is_relative_to(root)
            for root in roots
        ):
            return "is inside the service's data directory (NUCLEUS_DATA_DIR)"
    return None


def local_path_resolve(path: str | Path, *, trusted: bool = False) -> Path:
    """Resolve `path` through its symlinks and refuse it unless it lies in an import root.

    The root check comes before any existence check, so a refusal says nothing about
    which files exist outside the roots. A path in the service's own media or data
    directory is refused even when an import root contains it.
    """
    try:
        # Only an operator's own paths get ~ expanded: to an API caller "~bob" would be a
        # way to probe the server's accounts ("~unknownuser" raises).
        raw = Path(path).expanduser() if trusted else Path(path)
        if not raw.is_absolute():
            raise PathNotAllowed(path, "must be an absolute path")
        resolved = raw.resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop; a NUL character
        raise FetchError(f"{path!r}: cannot be resolved ({exc})") from None
    if trusted:
        return resolved
    roots = import_roots()
    if not any(resolved.is_relative_to(root) for root in roots):
        raise PathNotAllowed(path, "is outside the import roots (NUCLEUS_IMPORT_ROOTS)")
    refusal = _protection_refusal(resolved, roots)
    if refusal:
        raise PathNotAllowed(path, refusal)
    return resolved


def read_local(path: str | Path, *, max_bytes: int, trusted: bool = False) -> bytes:
    """Read a regular file inside the import roots, refusing it if over `max_bytes`."""
    resolved = local_path_resolve(path, trusted=trusted)
    # O_NOFOLLOW: a symlink swapped in after the check is refused, not followed.
    # O_NONBLOCK: opening a FIFO must not block the worker.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(resolved, flags)
    except FileNotFoundError:
        raise FetchError(f"{path}: does not exist") from None
    except OSError as exc:
        raise FetchError(f"{path}: cannot be opened ({exc.strerror})") from None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise FetchError(f"{path}: is not a regular file")
    with os.fdopen(fd, "rb") as f:
        if info.st_size > max_bytes:
            raise TooLarge(f"{path}: is {info.st_size} bytes, over the limit of {max_bytes}")
        return read_capped(iter(lambda: f.read(_CHUNK), b""), max_bytes=max_bytes, label=str(path))


def read_capped(
    chunks: Iterable[bytes], *, max_bytes: int, label: str, deadline: float | None = None
) -> bytes:
    """Join `chunks`, refusing more than `max_bytes` (or past `deadline`) as soon as it shows."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(f"{label}: is over the limit of {max_bytes} bytes")
        if deadline is not None and time.monotonic() > deadline:
            raise FetchError(f"{label}: download took too long")
        parts.append(chunk)
    return b"".join(parts)


# -------------------------------------------------------------------------------- http

_REFUSED_V4 = (
    ipaddress.ip_network("100.64.0.0/10"),  # carrier-grade NAT, not global
    ipaddress.ip_network("192.0.0.0/24"),
    ipaddress.ip_network("198.18.0.0/15"),  # benchmarking
)


def address_refusal(address: str) -> str | None:
    """Why `address` must not be fetched from (private, loopback, ...), or None if it may."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        # An IPv6 address that embeds an IPv4 one reaches that IPv4 host: judge that one.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is None and ip in ipaddress.ip_network("64:ff9b::/96"):  # NAT64
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return address_refusal(str(embedded))
    v4 = isinstance(ip, ipaddress.IPv4Address)
    checks = (
        ("unspecified", ip.is_unspecified),
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("site-local", not v4 and ip.is_site_local),  # type: ignore[union-attr]
        ("non-global", not ip.is_global or (v4 and any(ip in n for n in _REFUSED_V4))),
    )
    for reason, refused in checks:
        if refused:
            return f"{ip} is not a public address ({reason})"
    return None


def resolve_checked(host: str, port: int) -> list[str]:
    """Resolve `host` and return its addresses, refusing it if any of them is internal.

    Refusing on any internal address (rather than skipping it) keeps a name that resolves
    to both a public and a private address from being used to probe the private one.
    """
    host = host.strip("[]")
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not settings.NUCLEUS_ALLOW_PRIVATE_URLS:
        for address in addresses:
            reason = address_refusal(address)
            if reason:
                raise AddressNotAllowed(
                    f"{host}: refused, {reason} (set NUCLEUS_ALLOW_PRIVATE_URLS to allow)"
                )
    return addresses


class _CheckedConnectionMixin:
    """A urllib3 connection that connects only to the addresses it has just checked.

    The host name is resolved once, every address is checked, and the socket connects to
    one of those very addresses: nothing resolves the name a second time, so there is no
    window for DNS rebinding between the check and the connect. The Host header, TLS SNI
    and certificate verification still use the name from the URL, because urllib3 takes
    them from `self.host`; only the socket's peer address comes from here.
    """

    host: str
    port: int
    timeout: Any
    source_address: Any
    socket_options: Any

    def _new_conn(self) -> socket.socket:
        try:
            addresses = resolve_checked(self.host, self.port)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc  # type: ignore[arg-type]
        error: OSError | None = None
        for address in addresses:
            try:
                return create_connection(
                    (address, self.port),
                    self.timeout,
                    source_address=self.source_address,
                    socket_options=self.socket_options,
                )
            except TimeoutError as exc:
                raise ConnectTimeoutError(
                    self, f"Connection to {self.host} timed out. (connect timeout={self.timeout})"
                ) from exc
            except OSError as exc:
                error = exc
        raise NewConnectionError(self, f"Failed to establish a new connection: {error}")  # type: ignore[arg-type]


class _CheckedHTTPConnection(_CheckedConnectionMixin, HTTPConnection):
    pass


class _CheckedHTTPSConnection(_CheckedConnectionMixin, HTTPSConnection):
    pass


class _CheckedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = _CheckedHTTPConnection


class _CheckedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _CheckedHTTPSConnection


class CheckedAdapter(HTTPAdapter):
    """A requests adapter whose connections refuse internal addresses (see above)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _CheckedHTTPConnectionPool,
            "https": _CheckedHTTPSConnectionPool,
        }


_local = threading.local()


def _session() -> requests.Session:
    """A per-thread session (keep-alive across an ingest's images) with checked connections."""
    session: requests.Session | None = getattr(_local, "session", None)
    if session is None:
        session = requests.Session()
        # No proxies from the environment: the address check must judge the real peer.
        session.trust_env = False
        session.mount("http://", CheckedAdapter(max_retries=0))
        session.mount("https://", CheckedAdapter(max_retries=0))
        session.headers["User-Agent"] = "nucleus-ingest/1"
        _local.session = session
    return session


def _check_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https"):
        raise FetchError(f"{url}: only http and https URLs can be fetched")
    if not parts.hostname:
        raise FetchError(f"{url}: has no host")


def read_url(url: str, *, max_bytes: int) -> bytes:
    """GET an http(s) URL, following a few redirects, each checked like the first."""
    timeout = settings.NUCLEUS_FETCH_TIMEOUT
    deadline = time.monotonic() + timeout * TOTAL_TIMEOUT_FACTOR
    session = _session()
    for _ in range(MAX_REDIRECTS + 1):
        _check_url(url)
        try:
            with session.get(url, stream=True, timeout=timeout, allow_redirects=False) as resp:
                if resp.is_redirect:
                    url = urljoin(url, resp.headers["location"])
                    continue
                if resp.status_code != 200:
                    raise FetchError(f"{url}: answered HTTP {resp.status_code}")
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > max_bytes:
                    raise TooLarge(f"{url}: is {declared} bytes, over the limit of {max_bytes}")
                return read_capped(
                    resp.iter_content(_CHUNK), max_bytes=max_bytes, label=url, deadline=deadline
                )
        except requests.RequestException as exc:
            raise FetchError(f"{url}: cannot be fetched ({_reason(exc)})") from None
    raise FetchError(f"{url}: more than {MAX_REDIRECTS} redirects")


def _reason(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return type(exc).__name__


# ---------------------------------------------------------------------------------- s3


@functools.lru_cache(maxsize=4)
def _s3_client(
    endpoint: str | None, key: str | None, secret: str | None, region: str | None, timeout: float
) -> Any:
    # boto3 clients are thread-safe; building one costs tens of milliseconds, so reuse it.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name=region,
        config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 2},
            s3={"addressing_style": "path"} if endpoint else None,
        ),
    )


def _own_s3_area() -> tuple[str, str] | None:
    """The bucket and key prefix of the service's own S3 media storage, if it uses S3."""
    options = settings.STORAGES.get("default", {}).get("OPTIONS", {})
    bucket = options.get("bucket_name")
    if not bucket:
        return None
    return str(bucket), str(options.get("location") or "").strip("/")


def s3_url_check(url: str, *, prefix_only: bool = False) -> tuple[str, str]:
    """Split an s3:// URL into bucket and key, refusing what ingest must not read.

    Refused: the service's own media area (its bucket, under NUCLEUS_S3_PREFIX when one is
    set), any bucket missing from NUCLEUS_IMPORT_S3_BUCKETS when that list is set, and keys
    with `.` or `..` segments, which a server that normalises paths could resolve into
    another bucket. `prefix_only` is for a key prefix (images_root), which may be empty.
    """
    parts = urlsplit(url)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if not _BUCKET_NAME.fullmatch(bucket) or (not key and not prefix_only):
        raise FetchError(f"{url}: must be s3://bucket/key")
    if "\x00" in key or {".", ".."} & set(key.split("/")):
        raise FetchError(f"{url}: the key must not contain NUL characters or . or .. segments")
    allowed = settings.NUCLEUS_IMPORT_S3_BUCKETS
    if allowed and bucket.lower() not in {b.lower() for b in allowed}:
        raise BucketNotAllowed(
            url, f"bucket {bucket!r} is not one ingest may read (NUCLEUS_IMPORT_S3_BUCKETS)"
        )
    own = _own_s3_area()
    if own is not None and bucket.lower() == own[0].lower():
        own_prefix = own[1]
        if not own_prefix or key == own_prefix or key.startswith(own_prefix + "/"):
            raise BucketNotAllowed(url, "is in the service's own media storage")
    return bucket, key


def read_s3(url: str, *, max_bytes: int) -> bytes:
    """Read an s3://bucket/key object with the NUCLEUS_S3_* endpoint and credentials."""
    bucket, key = s3_url_check(url)
    client = _s3_client(
        settings.NUCLEUS_S3_ENDPOINT_URL,
        settings.NUCLEUS_S3_ACCESS_KEY_ID,
        settings.NUCLEUS_S3_SECRET_ACCESS_KEY,
        settings.NUCLEUS_S3_REGION,
        settings.NUCLEUS_FETCH_TIMEOUT,
    )
    try:
        obj = client.get_object(Bucket=bucket, Key=key)
        size = int(obj.get("ContentLength") or 0)
        body = obj["Body"]
        try:
            if size > max_bytes:
                raise TooLarge(f"{url}: is {size} bytes, over the limit of {max_bytes}")
            chunks: Iterator[bytes] = iter(lambda: body.read(_CHUNK), b"")
            return read_capped(chunks, max_bytes=max_bytes, label=url)
        finally:
            body.close()
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise FetchError(f"{url}: cannot be read ({code})") from None
    except BotoCoreError as exc:
        raise FetchError(f"{url}: cannot be read ({type(exc).__name__})") from None
