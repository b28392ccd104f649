"""Where an archive lives: a local directory or ``s3://bucket/prefix``, opened through fsspec.

    root = ArchiveRoot.open("archive/")                                  # a local directory
    root = ArchiveRoot.open("s3://assess/archive", storage_options=s3_options(os.environ))

Object storage takes the standard AWS settings: the CLI turns the process's
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_REGION`` /
``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL_S3`` / ``AWS_ENDPOINT_URL`` (an S3-compatible
server) into `storage_options` with `s3_options`; what is not given is left to botocore's own
lookup (profiles, instance roles). The options travel with each Dask task, so workers on other
machines reach the same bucket without their own environment.

Every failure to reach or read the store is an `ArchiveError` whose message is one line naming
the URL (never a secret).
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import fsspec
from fsspec.implementations.local import LocalFileSystem

from ..errors import AssessEngineError

S3_SCHEMES: Final = ("s3", "s3a")
S3_CLIENT_CONFIG: Final = {"connect_timeout": 5, "read_timeout": 60,
                           "retries": {"max_attempts": 3, "mode": "standard"}}
"""botocore settings unless the caller gives its own: an endpoint that does not answer fails in
seconds, not minutes."""


class ArchiveError(AssessEngineError):
    """The archive cannot be reached, read or written, or its content is not what its manifest
    and sessions table say (a corrupt or altered file, a missing column, an events digest that
    does not match). One line, naming the file or URL."""


class ArchiveUnreachableError(ArchiveError):
    """The archive's place cannot be reached at all (no such directory, endpoint down,
    credentials refused, no such bucket)."""


def s3_options(environ: Mapping[str, str]) -> dict[str, Any]:
    """fsspec/s3fs `storage_options` from the standard AWS environment variables in `environ`
    (only those set; botocore looks up the rest itself)."""
    options: dict[str, Any] = {}
    if environ.get("AWS_ACCESS_KEY_ID"):
        options["key"] = environ["AWS_ACCESS_KEY_ID"]
    if environ.get("AWS_SECRET_ACCESS_KEY"):
        options["secret"] = environ["AWS_SECRET_ACCESS_KEY"]
    if environ.get("AWS_SESSION_TOKEN"):
        options["token"] = environ["AWS_SESSION_TOKEN"]
    endpoint = environ.get("AWS_ENDPOINT_URL_S3") or environ.get("AWS_ENDPOINT_URL")
    if endpoint:
        options["endpoint_url"] = endpoint
    region = environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION")
    if region:
        options["client_kwargs"] = {"region_name": region}
    return options


@dataclass(frozen=True, slots=True)
class ArchiveRoot:
    """An archive's file system and root path. Paths given to its methods are relative to the
    root, with ``/`` separators (the manifest's spelling)."""

    url: str
    fs: fsspec.AbstractFileSystem = field(repr=False)
    path: str
    storage_options: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def open(cls, url: str, *, storage_options: Mapping[str, Any] | None = None) -> ArchiveRoot:
        """The archive at `url` (a directory path or ``s3://bucket/prefix``). Nothing is read
        or created yet. Raises ArchiveError for another URL scheme."""
        options = dict(storage_options or {})
        scheme = url.split("://", 1)[0].lower() if "://" in url else "file"
        if scheme not in ("file", *S3_SCHEMES):
            raise ArchiveError(f"{url}: an archive is a directory or s3://BUCKET/PREFIX, "
                               f"not {scheme}://")  # fmt: skip
        if scheme == "file":
            fs: fsspec.AbstractFileSystem = LocalFileSystem()
            path = fs._strip_protocol(url)
            options = {}
        else:
            options.setdefault("config_kwargs", dict(S3_CLIENT_CONFIG))
            try:
                fs = fsspec.filesystem("s3", **options)
            except ImportError:  # pragma: no cover - s3fs is in the archive extra
                raise ArchiveError(f"{url}: S3 needs s3fs (pip install "
                                   "'assessengine[archive]')") from None
            path = url.split("://", 1)[1].rstrip("/")
        return cls(url=url, fs=fs, path=str(path).rstrip("/") or "/", storage_options=options)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, LocalFileSystem)

    def full(self, relative: str) -> str:
        """The file system path of `relative`."""
        return posixpath.join(self.path, relative) if relative else self.path

    def where(self, relative: str = "") -> str:
        """`relative` as a URL for messages: ``s3://bucket/prefix/relative`` or a local path."""
        full = self.full(relative)
        return full if self.is_local else f"s3://{full}"

    def read_bytes(self, relative: str) -> bytes | None:
        """The file's content; None when it does not exist. ArchiveError when unreachable."""
        try:
            with self.fs.open(self.full(relative), "rb") as f:
                data: bytes = f.read()
                return data
        except FileNotFoundError:
            return None
        except Exception as exc:
            raise unreachable(self.where(relative), exc) from None

    def write_bytes(self, relative: str, data: bytes) -> None:
        """Write the whole file at once (a local file through a temporary name and a rename,
        an object with one PUT): a reader sees the old content or the new, never a part."""
        target = self.full(relative)
        try:
            if self.is_local:
                self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
                temp = f"{target}.tmp"
                with self.fs.open(temp, "wb") as f:
                    f.write(data)
                self.fs.mv(temp, target)
            else:
                self.fs.pipe_file(target, data)
        except Exception as exc:
            raise unreachable(self.where(relative), exc) from None

    def check_reachable(self) -> None:
        """Raise ArchiveUnreachableError unless the root can be listed (an S3 endpoint that
        answers, credentials it accepts, a bucket that exists)."""
        try:
            if self.is_local:
                if not self.fs.isdir(self.path):
                    raise FileNotFoundError(self.path)
            else:
                bucket = self.path.split("/", 1)[0]
                self.fs.ls(bucket, refresh=True)
        except Exception as exc:
            raise unreachable(self.where(), exc) from None


def unreachable(where: str, exc: BaseException) -> ArchiveUnreachableError:
    """One line for a failure to reach `where`: the exception's kind and first line."""
    if isinstance(exc, ArchiveUnreachableError):
        return exc
    first = (str(exc).strip().splitlines() or [""])[0]
    if isinstance(exc, FileNotFoundError):
        return ArchiveUnreachableError(f"{where}: no such archive directory or bucket")
    if isinstance(exc, PermissionError):
        return ArchiveUnreachableError(f"{where}: access denied ({first[:200]})")
    return ArchiveUnreachableError(f"{where}: cannot reach the archive: "
                                   f"{type(exc).__name__}: {first[:200]}")  # fmt: skip
