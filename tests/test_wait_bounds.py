"""No test waits for background work with a bound a loaded machine can reach (tests/waits.py).

CI runs the suite on two workers on a 2-core machine that may be loaded: a wait of 2 to 30 s
for an engine's threads, a scoring process or a server failed there once in a while (and on a
fresh clone a wait could include numba compiling). This reads the tests' source: a call that
waits (`wait_idle`, `flush`, `join`, `request`, `recv`, `wait`, `poll`, `open`) with a literal
bound under `MIN_BOUND_S` seconds fails it, as does any call's literal ``timeout`` under it and
a deadline of ``time.monotonic()`` plus fewer seconds, unless the wait checks that something
does NOT happen (under ``assert not``, compared with ``is None``, inside ``pytest.raises``: a
slow machine cannot fail those) or runs in a ``while`` loop (a poll interval: the loop has its
own deadline). Such a bound is `waits.WAIT_S`. (Defaults are not read: the peers' `recv` and
`request` default to a long bound themselves.)"""

from __future__ import annotations

import ast
from pathlib import Path

HERE = Path(__file__).resolve().parent
WAITING_CALLS = frozenset({"wait_idle", "flush", "join", "request", "recv", "wait", "poll",
                           "open"})  # fmt: skip
MIN_BOUND_S = 30.0


def _checks_absence_or_polls(node: ast.AST, parents: dict[ast.AST, ast.AST]) -> bool:
    """Whether the call `node` checks that nothing comes, or polls in a ``while`` loop."""
    parent = parents.get(node)
    while parent is not None and not isinstance(parent, ast.FunctionDef):
        if isinstance(parent, ast.UnaryOp) and isinstance(parent.op, ast.Not):
            return True
        if isinstance(parent, ast.Compare) and any(
            isinstance(c, ast.Constant) and c.value is None for c in parent.comparators
        ):
            return True
        if isinstance(parent, ast.With) and any(
            "raises" in ast.unparse(item.context_expr) for item in parent.items
        ):
            return True
        if isinstance(parent, ast.While):
            return True
        parent = parents.get(parent)
    return False


def short_waits(source: str, name: str) -> list[str]:
    """``name:line: call`` of each wait in `source` bounded by a literal under the minimum."""
    tree = ast.parse(source)
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    found = []
    for node in ast.walk(tree):
        bounds = _bounds(node)
        if any(0 < bound < MIN_BOUND_S for bound in bounds) and (
            not _checks_absence_or_polls(node, parents)
        ):
            found.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    return found


def _bounds(node: ast.AST) -> list[float]:
    """The literal bounds `node` sets: a waiting call's first argument, any call's
    ``timeout``, or the seconds added to ``time.monotonic()`` (a deadline)."""
    if isinstance(node, ast.Call):
        waits = isinstance(node.func, ast.Attribute) and node.func.attr in WAITING_CALLS
        given = [*(node.args[:1] if waits else []),
                 *(k.value for k in node.keywords if k.arg == "timeout")]  # fmt: skip
        return _numbers(given)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and (
        "monotonic()" in ast.unparse(node.left)
    ):
        return _numbers([node.right])
    return []


def _numbers(nodes: list[ast.expr]) -> list[float]:
    return [float(a.value) for a in nodes if isinstance(a, ast.Constant)
            and isinstance(a.value, int | float) and not isinstance(a.value, bool)]  # fmt: skip


def test_no_test_waits_for_background_work_with_a_short_bound() -> None:
    found = [line for path in sorted(HERE.glob("*.py"))
             for line in short_waits(path.read_text(encoding="utf-8"), path.name)]  # fmt: skip
    assert found == [], "bound these waits by waits.WAIT_S:\n" + "\n".join(found)


def test_the_check_tells_a_short_wait_from_a_check_that_nothing_comes() -> None:
    source = (
        "def t(engine, peer, c, done):\n"
        "    assert engine.wait_idle(10)\n"                   # short: found
        "    reply = peer.recv(timeout=5)\n"                  # short: found
        "    assert engine.wait_idle(WAIT_S)\n"               # a named bound: fine
        "    assert peer.recv(timeout=0.05) is None\n"        # nothing comes: fine
        "    assert not done.wait(0.2)\n"                     # nothing happens: fine
        "    with pytest.raises(DeliveryTimeoutError):\n"
        "        c.flush(timeout=1.0)\n"                      # must time out: fine
        "    while not done.is_set():\n"
        "        done.wait(0.05)\n"                           # a poll interval: fine
        "    assert peer.poll(0)\n"                           # no wait at all: fine
        "    http = httpx.Client(timeout=10)\n"               # short: found
        "    deadline = time.monotonic() + 20\n"              # short: found
    )
    assert short_waits(source, "t.py") == [
        "t.py:2: engine.wait_idle(10)", "t.py:3: peer.recv(timeout=5)",
        "t.py:12: httpx.Client(timeout=10)", "t.py:13: time.monotonic() + 20"]  # fmt: skip
