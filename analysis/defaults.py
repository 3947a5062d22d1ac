"""Defaults of rule identification, in one place (light imports: the CLI's help reads them)."""

from lrsim.contract import LABELS as RUN_LABELS

# what identification can tell apart: the run-file labels and one derived per run
DERIVED_LABELS = {"rule_optimizer": ("rule", "optimizer")}   # "<rule>+<optimizer>"
LABELS = (*RUN_LABELS, *DERIVED_LABELS)
N_PERMUTATIONS = 99          # label permutations of the null
N_PERMUTATIONS_QUICK = 19    # with --quick (the smallest p is 1 / 20 = 0.05)
TARGET_ACCURACY = 0.90       # what the protocol search aims for
N_SPLITS = 10                # repeated grouped splits
