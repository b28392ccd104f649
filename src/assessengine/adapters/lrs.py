"""Forward xAPI statements to a Learning Record Store (xAPI 1.0.3, HTTP basic auth).

`LrsClient(endpoint, username=..., password=...).send(statements)` POSTs the statements to
``<endpoint>/statements`` with ``X-Experience-API-Version: 1.0.3``. A 5xx answer, a 429, a
refused or broken connection and a timeout are retried with exponential backoff (a
``Retry-After`` in seconds is honoured, within the cap); after `attempts` tries `LrsError` says
what failed last. Any other answer (400 bad statement, 401/403 credentials, 409 conflicting
statement id) is final at once. Standard library only (urllib), so nothing is added to the
engine's dependencies.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from ..core.xapi import XAPI_VERSION
from ..errors import AssessEngineError

log = logging.getLogger(__name__)

RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})


class LrsError(AssessEngineError):
    """The LRS did not store the statements; the message says what it answered or why not.

    status:       the last HTTP status (None when no answer came)
    retryable:    whether trying again later could help (server error, overload or network)
    retry_after:  the seconds the LRS asked to wait (``Retry-After``), if it did
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after


class LrsClient:
    """An LRS at `endpoint` (its xAPI base URL, e.g. ``https://lrs.example.org/xapi/``).

    attempts:   tries in all, at least 1
    backoff_s:  wait before the 2nd try; doubled for each next one, up to `max_backoff_s`
    timeout_s:  per request (connect and each read)
    sleep:      injected for tests
    """

    def __init__(
        self,
        endpoint: str,
        *,
        username: str | None = None,
        password: str | None = None,
        attempts: int = 4,
        backoff_s: float = 0.5,
        max_backoff_s: float = 8.0,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not endpoint.startswith(("https://", "http://")):
            raise ValueError(f"the LRS endpoint must be an http(s) URL, not {endpoint!r}")
        if attempts < 1 or backoff_s < 0 or max_backoff_s < 0 or timeout_s <= 0:
            raise ValueError("attempts >= 1, backoffs >= 0 and timeout_s > 0 are required")
        self.url = endpoint.rstrip("/") + "/statements"
        self.attempts = attempts
        self.backoff_s, self.max_backoff_s, self.timeout_s = backoff_s, max_backoff_s, timeout_s
        self._sleep = sleep
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-Experience-API-Version": XAPI_VERSION,
        }
        if username is not None:
            pair = f"{username}:{password or ''}".encode()
            self._headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")

    def send(self, statements: Sequence[Mapping[str, Any]]) -> list[str]:
        """Store `statements`; returns the ids the LRS reports, or the ids sent when it
        answers without a body (``204 No Content``: e.g. it holds them already); none for an
        empty list."""
        if not statements:
            return []
        body = json.dumps(list(statements), separators=(",", ":"), ensure_ascii=False).encode()
        last = LrsError("not sent", retryable=True)
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                self._sleep(self._delay(attempt, last))
            try:
                reported = self._post(body)
            except LrsError as error:
                if not error.retryable:
                    raise
                last = error
                log.warning(
                    "LRS %s: attempt %d/%d failed: %s", self.url, attempt, self.attempts, error
                )
                continue
            if reported is None:
                return [str(s["id"]) for s in statements if "id" in s]
            return reported
        raise LrsError(
            f"gave up after {self.attempts} attempt{'s' if self.attempts > 1 else ''} to send"
            f" {len(statements)} statement(s) to {self.url}: {last}",
            status=last.status,
            retryable=True,
        )

    def _delay(self, attempt: int, error: LrsError) -> float:
        delay = min(self.backoff_s * 2.0 ** (attempt - 2), self.max_backoff_s)
        if error.retry_after is not None:
            delay = min(max(delay, error.retry_after), self.max_backoff_s)
        return delay

    def _post(self, body: bytes) -> list[str] | None:
        request = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                text = response.read().decode("utf-8", "replace")
                return _ids(text)
        except urllib.error.HTTPError as answer:
            with answer:
                raise _answer_error(answer) from None
        except (OSError, http.client.HTTPException) as error:
            reason = getattr(error, "reason", error)
            raise LrsError(f"no answer ({reason})", retryable=True) from None


def _answer_error(answer: urllib.error.HTTPError) -> LrsError:
    detail = answer.read(2000).decode("utf-8", "replace").strip()
    message = f"HTTP {answer.code} {answer.reason}" + (f": {detail}" if detail else "")
    retry_after = str(answer.headers.get("Retry-After", "")).strip()
    return LrsError(
        message,
        status=answer.code,
        retryable=answer.code in RETRY_STATUSES,
        retry_after=float(retry_after) if retry_after.isdigit() else None,
    )


def _ids(text: str) -> list[str] | None:
    """The ids in the LRS's answer (None for an answer without a body)."""
    if not text.strip():
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return []
    return [str(item) for item in data] if isinstance(data, list) else []
