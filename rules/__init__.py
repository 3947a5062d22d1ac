"""Learning rules, each registered once and run by every substrate (see `base.Rule`).

Every module of this package except `base` (and private `_` modules) is a rule module and is
imported here, which registers its rules: adding a rule is adding one file.
"""

import importlib
import pkgutil

from lrsim.rules.base import FAMILIES, LOCALITIES, Rule, Signals, register, rules

for _module in pkgutil.iter_modules(__path__):
    if _module.name != "base" and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["FAMILIES", "LOCALITIES", "Rule", "Signals", "register", "rules"]
