"""Learning rules, each registered once and run by every substrate (see `base.Rule`)."""

from lrsim.rules import (  # noqa: F401  (register)
    backprop,
    feedback_alignment,
    four_synapse,
    hebbian,
    stdp,
    weight_estimation,
)
from lrsim.rules.base import FAMILIES, LOCALITIES, Rule, Signals, register, rules

__all__ = ["FAMILIES", "LOCALITIES", "Rule", "Signals", "register", "rules"]
