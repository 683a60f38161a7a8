"""The simulated fleet: a seeded, deterministic service graph with a fault library and ground truth."""

from aurora.sim.faults import CATALOGUE, KINDS, Fault, FaultSpec, Scenario, demo_schedule, get_scenario
from aurora.sim.fleet import DEFAULT_START, ActionResult, Fleet, simulate
from aurora.sim.topology import Call, FleetSpec, HostSpec, ServiceSpec, shop_fleet

__all__ = [
    "CATALOGUE", "DEFAULT_START", "KINDS", "ActionResult", "Call", "Fault", "FaultSpec", "Fleet", "FleetSpec",
    "HostSpec", "Scenario", "ServiceSpec", "demo_schedule", "get_scenario", "shop_fleet", "simulate",
]
