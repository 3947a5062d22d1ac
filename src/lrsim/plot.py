"""`lrsim.plot`: figures of a store (trajectories by rule, accuracy against the recording
protocol, confusion matrices); the code lives in `lrsim.analysis.plot`."""

from lrsim.analysis.plot import (  # noqa: F401
    PROGRESS_LABEL,
    accuracy_against,
    as_store,
    confusion,
    interactive_trajectories,
    progress,
    sweep_arrays,
    sweeps,
    trajectories,
    trajectory_summary,
)

__all__ = ["PROGRESS_LABEL", "accuracy_against", "as_store", "confusion",
           "interactive_trajectories", "progress", "sweep_arrays", "sweeps", "trajectories",
           "trajectory_summary"]
