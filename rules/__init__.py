"""Learning rules, each registered once and run by every substrate (see `base.Rule`)."""

from lrsim.rules import backprop, feedback_alignment, hebbian  # noqa: F401  (register)
from lrsim.rules.base import FAMILIES, LOCALITIES, Rule, Signals, register, rules

__all__ = ["FAMILIES", "LOCALITIES", "Rule", "Signals", "register", "rules"]
