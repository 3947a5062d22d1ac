"""Accuracy of the credit-assignment rules on digits, 5 seeds trained together in one run."""

from __future__ import annotations

import pytest

from lrsim.config import parse
from lrsim.models.rate import train

TARGETS = {"backprop": 0.95, "feedback_alignment": 0.90, "direct_feedback_alignment": 0.88,
           "sign_symmetry": 0.93}


@pytest.mark.parametrize("rule,target", sorted(TARGETS.items()))
def test_digits_accuracy_over_five_seeds(rule: str, target: float):
    exp = parse({"seed": 0, "device": "cpu", "task": {"name": "digits"},
                 "model": {"hidden": [64, 64], "activation": "relu"}, "rule": {"name": rule},
                 "train": {"optimizer": "sgd", "lr": 0.05, "batch_size": 32, "steps": 3000,
                           "replicas": 5}})
    result = train(exp)
    assert result.status == ["ok"] * 5
    acc = result.test_accuracy
    assert acc.min() >= target, f"{rule}: accuracies {acc.round(3)} (target {target})"
