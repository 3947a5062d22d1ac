"""Defaults of rule identification, in one place (no heavy imports: the CLI's help reads
them)."""

LABELS = ("rule", "rule_family", "optimizer", "rule_optimizer")
N_PERMUTATIONS = 99          # label permutations of the null
N_PERMUTATIONS_QUICK = 19    # with --quick (the smallest p is 1 / 20 = 0.05)
TARGET_ACCURACY = 0.90       # what the protocol search aims for
N_SPLITS = 10                # repeated grouped splits
