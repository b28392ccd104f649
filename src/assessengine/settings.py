"""Every setting of a running engine, in one model: defaults here, then a TOML file, then the
environment (``ASSESSENGINE_<NAME>``), then command-line flags; each later source wins.

    settings = Settings.load(flags={"queue_mb": 128}, environ=os.environ, config=Path("e.toml"))

`Settings.load` is called by the CLI only (the one place that reads `os.environ`); tests pass a
dict. `compose` turns the settings into a store, a transport, a scoring backend and an app.
docs/operations.md ("Settings") lists each one with its default, environment name and flag.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Final, Literal

from pydantic import Field, FilePath, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .core.ids import site_problem
from .errors import AssessEngineError

ENV_PREFIX: Final = "ASSESSENGINE_"
MiB: Final = 2**20
KiB: Final = 2**10


class SettingsError(AssessEngineError):
    """A setting is missing or out of range, or the config file cannot be read (one line:
    where it came from, and what is wrong)."""


class Settings(BaseSettings):
    """The engine's settings (see the module docstring). Immutable; unknown names are errors."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="forbid", frozen=True, case_sensitive=False
    )

    # -------------------------------------------------------------------------- where
    db: str | None = Field(None, description="The store: sqlite:///PATH or a bare PATH "
                           "(created if missing; batch payloads go in PATH-payloads/ beside it).")
    zmq: str = Field("tcp://127.0.0.1:5555",
                     description="ZeroMQ endpoint to bind (port * = any free port).")
    http: str = Field("127.0.0.1:8080",
                      description="HTTP API and web pages, HOST:PORT (port 0 = any free port).")
    site_id: str | None = Field(None, description="This engine's site, when several sites "
                                "replicate to a hub (docs/operations.md, \"Several sites\"): "
                                "every new session and learner id is stored as SITE:ID. "
                                "None: a single-site install, ids as sent.")
    rubrics: list[Path] = Field(default_factory=list, description="Also serve the rubrics in "
                                "these directories (before the bundled ones).")
    # -------------------------------------------------------------------------- security
    curve_keys: Path | None = Field(None, description="CURVE: DIR/engine.key_secret is the "
                                    "engine's key; every other DIR/*.key is an allowed client.")
    insecure: bool = Field(False, description="Allow binding a non-loopback address without "
                           "CURVE (anyone who reaches the port can write sessions).")
    # -------------------------------------------------------------------------- ingest
    max_frame_mb: int = Field(16, ge=1, le=1024, description="Largest EVENTS payload "
                              "accepted, MiB (NACK too_large above).")
    max_header_kb: int = Field(64, ge=1, le=1024,
                               description="Largest header frame accepted, KiB.")
    rcvhwm: int = Field(256, ge=1, description="Messages queued per client in ZeroMQ before "
                        "its sends block (backpressure).")
    queue_mb: int = Field(64, ge=1, le=65536, description="Bound of the queue between ingest "
                          "and scoring, MiB (backpressure).")
    round_mb: int = Field(16, ge=1, le=1024, description="Payload taken from the socket per "
                          "ingest round (one group commit), MiB.")
    round_messages: int = Field(2048, ge=1,
                                description="Messages taken per ingest round, at most.")
    commit_thread: bool = Field(False, description="Commit large ingest rounds in a commit "
                                "thread, overlapping a round's commit with the next round's "
                                "work (off: every round is committed in the ingest thread).")
    overlap_min_kb: int = Field(1024, ge=0, le=1024 * 1024, description="With commit_thread: "
                                "rounds holding fewer payload KiB are committed at once in the "
                                "ingest thread, larger ones in the commit thread.")
    # -------------------------------------------------------------------------- storage
    synchronous: Literal["normal", "full"] = Field("normal", description="Commit durability: "
                                                   "normal survives a crash of the engine, "
                                                   "full also a power loss.")
    # -------------------------------------------------------------------------- scoring
    scoring: Literal["process", "thread"] = Field("process", description="Where scoring runs: "
                                                  "a process of its own (ingest and scoring each "
                                                  "use a core) or a thread of the engine's.")
    scoring_linger: float = Field(0.05, ge=0, le=10, description="Seconds scoring waits for "
                                  "more batches before a step when little is queued.")
    fused_kernel: bool = Field(True, description="Score each rubric with one generated, "
                               "compiled function (fused steps; same reports) instead of the "
                               "table-driven kernel. A rubric's step is compiled in a child "
                               "process the first time (seconds; the table-driven kernel "
                               "scores meanwhile), later processes load it from fused_cache.")
    fused_cache: Path | None = Field(None, description="With fused_kernel: where the generated "
                                     "modules and their compiled code go; default "
                                     "$XDG_CACHE_HOME/assessengine/fused.")
    scoring_start_timeout: float = Field(120.0, gt=0, description="Seconds the scoring process "
                                         "may take to start (warm-up and recovery).")
    stop_timeout: float = Field(60.0, gt=0, description="Seconds a stop waits for the ingest "
                                "and the scoring to finish what they hold (keep the service "
                                "manager's stop timeout above it).")
    # -------------------------------------------------------------------------- HTTP
    no_ingest: bool = Field(False, description="Serve the HTTP API and pages alone: no ZeroMQ "
                            "socket, no scoring, the store not locked as an engine's (an API "
                            "server beside the engines of a shared database).")
    max_upload_mb: int = Field(64, ge=1, le=4096,
                               description="Largest upload accepted over HTTP, MiB.")
    # -------------------------------------------------------------------------- archive
    archive_url: str | None = Field(None, description="A Parquet archive (assessengine archive "
                                    "export: a directory or s3://BUCKET/PREFIX): cohort "
                                    "re-scores in the API read archived sessions from it.")
    archive_scheduler: str | None = Field(None, description="A Dask scheduler "
                                          "(tcp://HOST:PORT) that runs the API's re-scores "
                                          "from the archive; default: in the API's process.")
    # -------------------------------------------------------------------------- credentials
    issuer_key: Path | None = Field(None, description="Key that signs credentials (assessengine "
                                    "keys issuer); default: DB.issuer.pem beside the store, "
                                    "made on first issue.")
    base_url: str | None = Field(None, description="The engine's public URL, written into "
                                 "credentials; default: http://HOST:PORT of http.")
    issuer_name: str = Field("assessengine", description="The issuer's name in credentials.")
    issuer_url: str | None = Field(None, description="The issuer's home page in credentials.")
    issuer_description: str | None = Field(None, description="The issuer's description in "
                                           "credentials.")
    issuer_email: str | None = Field(None, description="The issuer's contact email in "
                                     "credentials.")
    issuer_image: str | None = Field(None, description="URL of the issuer's logo in "
                                     "credentials (the issuer profile's image).")
    lrs_url: str | None = Field(None, description="Learning Record Store to forward xAPI "
                                "statements to (http(s) URL).")
    lrs_username: str | None = Field(None, description="The LRS's user (HTTP basic auth).")
    lrs_password: SecretStr | None = Field(None, description="The LRS's password (environment "
                                           "or config file only, never a flag).")
    issuer_did_web: str | None = Field(None, description="Issue as did:web:HOST (a DNS name, "
                                       "optionally :PORT) instead of the key's did:key; the "
                                       "engine serves its DID document at "
                                       "/.well-known/did.json.")
    issuer_retired_keys: Annotated[list[FilePath], NoDecode] = Field(
        default_factory=list, description="With issuer_did_web: the keys that signed before a "
        "rotation (PEM files, private or public; in the environment separated by commas or "
        "spaces): the DID document keeps them, so what they signed keeps verifying.")
    trusted_did_documents: Annotated[list[FilePath], NoDecode] = Field(
        default_factory=list, description="DID documents of partner did:web issuers (their "
        "did.json, as files; in the environment separated by commas or spaces): their "
        "credentials verify as valid, by the keys listed there (nothing is fetched).")
    trusted_issuers: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Issuers (DIDs) whose credentials verify as valid "
        "besides the engine's own key (in the environment: separated by spaces or commas).")

    @field_validator("trusted_issuers", "issuer_retired_keys", "trusted_did_documents",
                     mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        return value.replace(",", " ").split() if isinstance(value, str) else value

    @field_validator("site_id")
    @classmethod
    def _site(cls, value: str | None) -> str | None:
        problem = None if value is None else site_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("base_url", "issuer_url", "issuer_image", "lrs_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("https://", "http://")):
            raise ValueError(f"must be an http(s) URL, not {value!r}")
        return value

    @classmethod
    def load(
        cls,
        *,
        flags: Mapping[str, Any] | None = None,
        environ: Mapping[str, str] | None = None,
        config: Path | None = None,
    ) -> Settings:
        """Defaults, then `config` (a TOML file of the same names), then `environ`'s
        ``ASSESSENGINE_*`` variables, then `flags` (None values are not given). Raises
        SettingsError naming the setting and its source."""
        layers: list[tuple[str, dict[str, Any]]] = []
        if config is not None:
            layers.append((str(config), _read_toml(config)))
        layers.append(("environment", _Environ(cls, environ or {})()))
        layers.append(("command line", {k: v for k, v in (flags or {}).items()
                                        if v is not None}))  # fmt: skip
        merged: dict[str, Any] = {}
        origin: dict[str, str] = {}
        for where, values in layers:
            merged |= values
            origin |= dict.fromkeys(values, where)
        try:
            return cls(**merged)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, origin)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only what `load` gathered: the model itself never reads the process's environment."""
        return (init_settings,)

    # -------------------------------------------------------------------------- derived
    @property
    def max_frame_bytes(self) -> int:
        return self.max_frame_mb * MiB

    @property
    def max_header_bytes(self) -> int:
        return self.max_header_kb * KiB

    @property
    def queue_bytes(self) -> int:
        return self.queue_mb * MiB

    @property
    def round_bytes(self) -> int:
        return self.round_mb * MiB

    @property
    def overlap_min_bytes(self) -> int:
        return self.overlap_min_kb * KiB

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * MiB


def env_name(field: str) -> str:
    """The environment variable of a setting."""
    return ENV_PREFIX + field.upper()


SECRET: Final = frozenset({"lrs_password"})
"""Settings that have no command-line flag (a flag shows in the process list)."""


def unknown_environment(environ: Mapping[str, str]) -> list[str]:
    """The ``ASSESSENGINE_*`` names in `environ` that are no setting (a typo, or another
    tool's): `load` ignores them; the CLI warns."""
    known = {env_name(f) for f in Settings.model_fields}
    return sorted(k for k in environ if k.upper().startswith(ENV_PREFIX) and k.upper() not in known)


def flag_name(field: str) -> str:
    """The command-line flag of a setting."""
    return "--" + field.replace("_", "-")


class _Environ(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of `os.environ`
    (only ``ASSESSENGINE_*`` names are looked at; lists are JSON: ``["a", "b"]``)."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = {k.lower(): v for k, v in environ.items()
                         if k.upper().startswith(ENV_PREFIX)}  # fmt: skip
        super().__init__(settings_cls, case_sensitive=False, env_prefix=ENV_PREFIX,
                         env_ignore_empty=True)  # fmt: skip

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k: v for k, v in self._environ.items() if v != ""}



def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: {exc}") from None
    unknown = sorted(set(data) - set(Settings.model_fields))
    if unknown:
        raise SettingsError(f"{path}: unknown setting {unknown[0]!r} (known: "
                            f"{', '.join(Settings.model_fields)})")  # fmt: skip
    return data


def _describe(exc: ValidationError, origin: Mapping[str, str]) -> str:
    """The first problem of `exc`, on one line, with where the value came from."""
    error = exc.errors()[0]
    name = str(error["loc"][0]) if error["loc"] else "settings"
    where = origin.get(name, "default")
    shown = {"environment": env_name(name), "command line": flag_name(name)}.get(where, name)
    return f"{where}: {shown}: {error['msg']}"
