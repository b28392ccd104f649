"""The behaviour model of each scenario, by scenario id."""

from __future__ import annotations

from . import forklift, haul_truck, lhd, network_lab
from .profiles import Model

MODELS: dict[str, Model] = {
    m.scenario: m for m in (forklift.MODEL, haul_truck.MODEL, lhd.MODEL, network_lab.MODEL)
}


def model_for(scenario_id: str) -> Model:
    """The model of `scenario_id`; raises ValueError naming the scenarios that have one."""
    try:
        return MODELS[scenario_id]
    except KeyError:
        known = ", ".join(sorted(MODELS))
        raise ValueError(
            f"no simulator model for scenario {scenario_id!r} (known: {known})"
        ) from None
