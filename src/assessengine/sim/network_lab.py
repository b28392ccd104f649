"""Behaviour model of `network-lab`: an entry-level technician's work order on a lab switch:
fit an SFP module, test and connect the uplink and a PC, configure an access VLAN and the PC's
address, verify with ping, save, document and submit.

Mostly discrete events (with the port, VLAN or round-trip time they concern); the lab's switch
poller reports the number of ports with link every 5 s. A link comes up 3-6 s after its cable
is connected.

The designed flaws (see `PROFILES`) refer to the criteria of `rubrics/network-lab.yaml`.
"""

from __future__ import annotations

import numpy as np

from .kinematics import Timeline
from .profiles import Model, Profile, registry

UPLINK = 25  # the SFP port on the work order

PROFILES = registry(
    Profile("competent", "works through the work order in order and checks every step"),
    Profile(
        "no-esd",
        "fits the SFP module without wearing the ESD wrist strap",
        frozenset({"no_esd"}),
        ("esd_protection",),
    ),
    Profile(
        "wrong-port",
        "plugs the PC into the port next to the one on the work order, then moves it",
        frozenset({"wrong_port"}),
        ("correct_ports",),
    ),
    Profile(
        "untested-cable",
        "never uses the cable tester",
        frozenset({"untested_cable"}),
        ("cable_tested_before_use",),
    ),
    Profile(
        "out-of-order",
        "configures before cabling the PC, and assigns the port before creating the VLAN",
        frozenset({"out_of_order"}),
        ("config_order", "links_up_before_config"),
    ),
    Profile(
        "no-verify",
        "never pings to verify the configuration",
        frozenset({"no_verify"}),
        ("verified_by_ping",),
    ),
    Profile(
        "dup-ip",
        "gives the PC an address already in use, sees the ping fail, then fixes it",
        frozenset({"dup_ip"}),
        ("no_duplicate_ip",),
    ),
    Profile(
        "forgets-save",
        "submits without saving the running configuration",
        frozenset({"no_save"}),
        ("saved_before_submit",),
    ),
    Profile(
        "slow",
        "spends 40-50 minutes looking up commands before configuring",
        frozenset({"slow"}),
        ("time_limit",),
    ),
)


class _Lab:
    __slots__ = ("draws", "flaws", "rng", "tl", "up")

    def __init__(self, rng: np.random.Generator, flaws: frozenset[str]) -> None:
        self.rng, self.flaws = rng, flaws
        self.tl = Timeline({"ports_up": 0.0})
        self.up = 0
        self.draws: list[float] = []

    def uniform(self, low: float, high: float) -> float:
        """A uniform draw from [low, high), from a block of draws taken at once (a session
        plans a few dozen pauses; one numpy call per pause dominated the generation time)."""
        if not self.draws:
            self.draws = self.rng.random(32).tolist()
        return low + (high - low) * self.draws.pop()

    def pause(self, low: float, high: float) -> None:
        self.tl.wait(self.uniform(low, high))

    def connect(self, port: int) -> None:
        if "untested_cable" not in self.flaws:
            self.tl.emit("cable_tested")
            self.pause(10, 30)
        self.tl.emit("cable_connected", signals={"port": float(port)})
        self.link(+1)

    def link(self, change: int) -> None:
        self.up += change
        self.tl.set("ports_up", float(self.up), at=self.tl.t + self.uniform(3, 6))


def plan(rng: np.random.Generator, flaws: frozenset[str]) -> Timeline:
    """One work order, from `lab_started` to `lab_submitted`."""
    lab = _Lab(rng, flaws)
    tl = lab.tl
    pc_port = int(rng.integers(1, 25))
    vlan = float(rng.choice([10, 20, 30, 40]))
    lab.pause(5, 15)
    tl.emit("lab_started")
    lab.pause(20, 60)
    if "no_esd" not in flaws:
        tl.emit("esd_strap_on")
        lab.pause(30, 90)
    tl.emit("module_installed", signals={"port": float(UPLINK)})
    lab.pause(20, 40)
    lab.connect(UPLINK)
    lab.pause(30, 60)
    if "out_of_order" not in flaws:
        _cable_pc(lab, pc_port)
    if "no_esd" not in flaws:
        tl.emit("esd_strap_off")
        lab.pause(30, 60)
    tl.emit("console_connected")
    lab.pause(20, 40)
    tl.emit("logged_in")
    if "slow" in flaws:
        lab.pause(2400, 3000)
    else:
        lab.pause(60, 180)
    _configure_vlan(lab, pc_port, vlan)
    if "out_of_order" in flaws:
        _cable_pc(lab, pc_port)
    lab.pause(60, 180)
    _address(lab)
    lab.pause(30, 90)
    if "no_save" not in flaws:
        tl.emit("config_saved")
        lab.pause(30, 90)
    tl.emit("ticket_updated")
    lab.pause(60, 180)
    tl.emit("lab_submitted")
    lab.pause(2, 5)
    return tl


def _cable_pc(lab: _Lab, port: int) -> None:
    tl = lab.tl
    if "wrong_port" in lab.flaws:
        wrong = port + 1 if port < 24 else port - 1
        lab.connect(wrong)
        lab.pause(0.5, 1.5)
        tl.emit("wrong_port", signals={"port": float(wrong)})
        lab.pause(40, 100)
        tl.emit("cable_disconnected", signals={"port": float(wrong)})
        lab.link(-1)
        lab.pause(5, 15)
        tl.emit("cable_connected", signals={"port": float(port)})
        lab.link(+1)
    else:
        lab.connect(port)
    lab.pause(20, 60)


def _configure_vlan(lab: _Lab, port: int, vlan: float) -> None:
    tl = lab.tl
    steps = [
        ("vlan_created", {"vlan": vlan}),
        ("port_vlan_assigned", {"port": float(port), "vlan": vlan}),
    ]
    if "out_of_order" in lab.flaws:
        steps.reverse()
    for name, carried in steps:
        tl.emit(name, signals=carried)
        lab.pause(30, 90)


def _address(lab: _Lab) -> None:
    tl = lab.tl
    tl.emit("ip_assigned")
    if "dup_ip" in lab.flaws:
        lab.pause(1, 3)
        tl.emit("duplicate_ip")
        lab.pause(20, 40)
        tl.emit("ping_failed")
        lab.pause(40, 80)
        tl.emit("ip_assigned")
    if "no_verify" in lab.flaws:
        return
    for _ in range(int(lab.rng.integers(1, 3))):
        lab.pause(20, 40)
        tl.emit("ping_succeeded", signals={"rtt_ms": round(lab.uniform(0.4, 3.0), 3)})


MODEL = Model(
    scenario="network-lab",
    rubric="network-lab",
    plan=plan,
    profiles=PROFILES,
)
