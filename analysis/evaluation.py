"""Former home of rule-identification evaluation, now split into single-job modules; the
names are re-exported here for existing imports.

- `lrsim.analysis.splits`: grouped repeated splits, sem
- `lrsim.analysis.crossval`: fit-and-score, cross-validation
- `lrsim.analysis.null`: the label-permutation null
- `lrsim.analysis.importance`: grouped permutation importance
- `lrsim.analysis.sweeps`: accuracy against the recording protocol
- `lrsim.analysis.generalisation`: held-out tests (`--holdout`, `--test`)
- `lrsim.analysis.control`: the loss-curve classifier and the performance-matched control
- `lrsim.analysis.protocol`: the protocol search and its cost-accuracy frontier
- `lrsim.analysis.identify`: the whole study, returning `lrsim.analysis.results.IdentifyResult`
"""

from lrsim.analysis.crossval import cross_validate, fit_and_score
from lrsim.analysis.generalisation import GENERALISATION_KEYS, holdout_mask, parse_holdout
from lrsim.analysis.identify import identify
from lrsim.analysis.importance import grouped_permutation_importance, importance
from lrsim.analysis.null import permutation_null, permuted_labels
from lrsim.analysis.protocol import (
    ALL_MEASURABLE,
    TARGET_ACCURACY,
    protocol_cost,
    protocol_sentence,
    search_protocols,
)
from lrsim.analysis.splits import RepeatedStratifiedGroupSplit, sem

__all__ = ["ALL_MEASURABLE", "GENERALISATION_KEYS", "TARGET_ACCURACY",
           "RepeatedStratifiedGroupSplit", "cross_validate", "fit_and_score",
           "grouped_permutation_importance", "holdout_mask", "identify", "importance",
           "parse_holdout", "permutation_null", "permuted_labels", "protocol_cost",
           "protocol_sentence", "search_protocols", "sem"]
