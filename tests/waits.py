"""How long a test waits for work done in the background (an engine's threads, a scoring
process, a server in a subprocess or a thread).

CI runs the suite on two workers on a 2-core machine that other jobs may load (load 12 has
been seen): such work then takes many times what it takes on an idle machine. A wait is
bounded only so that a hang fails the test instead of the run, never to time the work
(benchmarks live in bench/). A wait for something that must NOT happen stays short: it
cannot fail on a slow machine."""

from __future__ import annotations

from typing import Final

WAIT_S: Final = 120.0
"""The bound of every wait for background work in the tests."""
WAIT_MS: Final = int(WAIT_S * 1000)
"""`WAIT_S` in milliseconds (ZeroMQ's `poll`)."""
