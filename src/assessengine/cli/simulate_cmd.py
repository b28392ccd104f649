"""`assessengine simulate`: write simulated sessions as an events file (attaches to `main`)."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Literal

import click

from ..adapters.library import load_scenario
from ..client import ClientError, EngineClient
from ..core.scenario import Scenario
from ..sim import MIXED, SensorOptions, SimBatch, jsonl_lines, model_for, parse_mix, simulate
from ..streaming import Rate, stream_sessions
from ._app import main, scenario_dirs_option

CHUNK = 50
"""Sessions generated per step (memory stays bounded; output does not depend on it)."""
STREAM_CHUNK = 200
"""Sessions streamed together with --connect --rate max (--rate realtime: all at once)."""


@main.command("simulate")
@click.argument("scenario", metavar="SCENARIO")
@click.option(
    "--profile",
    "-p",
    default="competent",
    show_default=True,
    help="Operator profile, or 'mixed' (see --mix). --list-profiles shows them.",
)
@click.option(
    "--sessions",
    "-n",
    type=click.IntRange(min=0),
    default=1,
    show_default=True,
    help="Number of sessions.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Same seed, same options: byte-identical output.",
)
@click.option(
    "--out",
    "-o",
    default="-",
    show_default=True,
    metavar="FILE",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Events file to write (JSON Lines); '-' for standard output.",
)
@click.option(
    "--noise",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Sensor noise, as a multiple of each signal's nominal noise.",
)
@click.option(
    "--drop",
    type=click.FloatRange(0, 1, max_open=True),
    default=0.0,
    show_default=True,
    help="Probability that a telemetry sample is lost.",
)
@click.option(
    "--jitter",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    metavar="SECONDS",
    help="Standard deviation of sample timestamp errors.",
)
@click.option(
    "--mix",
    default=None,
    metavar="NAME=W,...",
    help="Profile weights for --profile mixed, e.g. competent=0.5,speeder=0.5 "
    "(default: half competent, the rest shared by the flawed profiles).",
)
@click.option(
    "--rubric",
    default=None,
    metavar="ID",
    help="Rubric id written in each session's open record (default: the "
    "scenario's library rubric).",
)
@scenario_dirs_option
@click.option("--list-profiles", is_flag=True, help="List the scenario's profiles and exit.")
@click.option(
    "--connect",
    default=None,
    metavar="ENDPOINT",
    help="Stream the sessions to a running engine (e.g. tcp://127.0.0.1:5555) instead of "
    "writing a file: all sessions open at once, events interleaved in time order.",
)
@click.option(
    "--rate",
    type=click.Choice(["max", "realtime"]),
    default="max",
    show_default=True,
    help="With --connect: as fast as the engine acknowledges, or paced by the events' times.",
)
@click.option(
    "--encoding",
    type=click.Choice(["columns-v1", "json-v1"]),
    default="columns-v1",
    show_default=True,
    help="With --connect: the EVENTS encoding.",
)
def simulate_command(
    *,
    scenario: str,
    profile: str,
    sessions: int,
    seed: int,
    out: Path,
    noise: float,
    drop: float,
    jitter: float,
    mix: str | None,
    rubric: str | None,
    scenario_dirs: tuple[Path, ...],
    list_profiles: bool,
    connect: str | None,
    rate: Rate,
    encoding: Literal["columns-v1", "json-v1"],
) -> None:
    """Simulate SCENARIO sessions (an id such as haul-truck-surface, or a scenario file).

    Writes the events format that `assessengine score` reads: per session an open line
    (learner, scenario, rubric, profile), its events, and a close line.

    \b
    Examples:
      assessengine simulate forklift-warehouse --profile speeder -n 20 --seed 1 -o ev.jsonl
      assessengine simulate lhd-underground --profile mixed --mix competent=3,speeder=1 -n 100
      assessengine simulate forklift-warehouse --list-profiles
      assessengine simulate network-lab -p mixed -n 50 --connect tcp://127.0.0.1:5555
    """
    loaded = _scenario(scenario, scenario_dirs)
    if list_profiles:
        _print_profiles(loaded)
        return
    try:
        model = model_for(loaded.scenario)
        if profile != MIXED:
            model.profile(profile)
            if mix is not None:
                raise click.BadParameter("--mix goes with --profile mixed", param_hint="--mix")
        elif mix is not None:
            parse_mix(mix, model)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    options = SensorOptions(noise=noise, drop=drop, jitter=jitter)
    context = click.get_current_context()
    for name in ("rate", "encoding"):
        explicit = context.get_parameter_source(name) != click.core.ParameterSource.DEFAULT
        if connect is None and explicit:
            raise click.UsageError(f"--{name} goes with --connect")
    if connect is not None:
        if str(out) != "-":
            raise click.UsageError("--connect streams to the engine; leave out --out")
        batches = (
            simulate(loaded, profile, min(chunk, sessions - first), seed=seed, options=options,
                     mix=mix, first=first, rubric=rubric)
            for chunk in [sessions if rate == "realtime" else STREAM_CHUNK]
            for first in range(0, sessions, chunk)
        )  # fmt: skip
        _stream(connect, batches, rate=rate, encoding=encoding)
        return
    with click.open_file(str(out), "w", encoding="utf-8", lazy=False) as stream:
        events = _write(
            stream,
            scenario=loaded,
            profile=profile,
            sessions=sessions,
            seed=seed,
            options=options,
            mix=mix,
            rubric=rubric,
        )
    where = "standard output" if str(out) == "-" else str(out)
    click.echo(f"{sessions} sessions, {events} events -> {where}", err=True)


def _stream(
    endpoint: str,
    batches: Iterable[SimBatch],
    *,
    rate: Rate,
    encoding: Literal["columns-v1", "json-v1"],
) -> None:
    """Stream each batch of sessions in turn with one client; a summary on stderr."""
    sessions = events = 0
    seconds = 0.0
    try:
        with EngineClient(endpoint, client_id="assessengine-simulate", encoding=encoding) as c:
            for batch in batches:
                sent = stream_sessions(c, batch, rate=rate)
                sessions, events = sessions + sent.sessions, events + sent.events
                seconds += sent.seconds
    except ClientError as exc:
        raise click.ClickException(f"{endpoint}: {exc}") from None
    speed = f" ({events / seconds:,.0f} events/s)" if seconds else ""
    click.echo(f"{sessions} sessions, {events:,} events -> {endpoint}, all acknowledged and "
               f"closed in {seconds:.1f}s{speed}", err=True)  # fmt: skip


def _scenario(scenario: str, scenario_dirs: tuple[Path, ...]) -> Scenario:
    """The scenario; ScenarioError (FILE:LINE:COL lines, exit 2 from the root group) when it
    is not found or invalid."""
    return load_scenario(scenario, scenario_dirs=scenario_dirs)


def _write(
    stream: IO[str],
    *,
    scenario: Scenario,
    profile: str,
    sessions: int,
    seed: int,
    options: SensorOptions,
    mix: str | None,
    rubric: str | None,
) -> int:
    """Generate in chunks, writing as it goes; progress on stderr for multi-chunk runs."""
    events = 0
    starts = range(0, sessions, CHUNK)
    with click.progressbar(
        starts,
        label=f"simulating {sessions} sessions",
        file=sys.stderr,
        hidden=sessions <= CHUNK,
        item_show_func=lambda _: None,
    ) as bar:
        for first in bar:
            batch = simulate(
                scenario,
                profile,
                min(CHUNK, sessions - first),
                seed=seed,
                options=options,
                mix=mix,
                first=first,
                rubric=rubric,
            )
            stream.writelines(line + "\n" for line in jsonl_lines(batch))
            events += len(batch)
    return events


def _print_profiles(scenario: Scenario) -> None:
    try:
        model = model_for(scenario.scenario)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"profiles of {scenario.scenario} (breaks = criteria of rubric {model.rubric}):")
    for p in model.profiles.values():
        breaks = ", ".join(p.breaks) or "nothing"
        click.echo(f"  {p.name:<20} {p.summary}\n  {'':<20} breaks: {breaks}")
    click.echo(f"  {MIXED:<20} a blend of the above, per session (--mix NAME=W,...)")
