"""Configuration objects: what the experiment is, in SI units (metres, radians).

The command line fills these objects; the Python API builds them directly.
Fields left at ``None`` (or C's negative sentinel for step counts) are chosen
later by :func:`nanobragg.resolve.resolve`, following the C program's order of decisions.
"""
from .checks import CheckError, ConfigError, check_experiment
from .experiment import (
    BeamConfig,
    CrystalConfig,
    DetectorConfig,
    Experiment,
    OutputConfig,
    SamplingConfig,
)

__all__ = [
    "CheckError",
    "ConfigError",
    "check_experiment",
    "BeamConfig",
    "CrystalConfig",
    "DetectorConfig",
    "Experiment",
    "OutputConfig",
    "SamplingConfig",
]
