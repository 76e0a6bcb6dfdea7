"""The simulator: calls run on a simulated clock, driven by a caller script, with no PBX."""

from ivrkit.sim.script import CallerScript, parse_keys
from ivrkit.sim.session import Simulation, SimulationResult, simulate

__all__ = ["CallerScript", "Simulation", "SimulationResult", "parse_keys", "simulate"]
