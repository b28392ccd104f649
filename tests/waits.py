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
START_S: Final = 300.0
"""The bound of a wait for ``assessengine serve`` or ``demo`` to start serving: each loads the
kernel, then waits up to its ``scoring_start_timeout`` (120 s) for its scoring process (which
imports the package and loads the kernel again), migrates its store and starts uvicorn (at load
12-15 on two cores, 60 s was too short for `serve`). Longer than what serve itself waits, so
that a server that cannot start says why (its log) before the test gives up."""
