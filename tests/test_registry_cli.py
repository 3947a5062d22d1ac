"""The registry's validation and the `lrsim rules` / `lrsim run` commands, run for real."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from lrsim.errors import ConfigError
from lrsim.registry import Param, Registry
from lrsim.rules import rules


def test_registry_validates_names_and_parameters():
    reg: Registry = Registry("widget")
    reg.register("spring", lambda k=1.0, mode="a": (k, mode),
                 params={"k": Param(1.0, low=0.0, low_open=True),
                         "mode": Param("a", choices=("a", "b"))})
    assert reg.create("spring", k=2) == (2.0, "a")
    with pytest.raises(ConfigError, match="unknown widget 'sprong' \\(did you mean 'spring'\\?\\)"):
        reg.create("sprong")
    with pytest.raises(ConfigError, match=r"'k' = 0.0 is out of range; allowed \(0.0, inf\]"):
        reg.create("spring", k=0)
    with pytest.raises(ConfigError, match="one of 'a', 'b'"):
        reg.create("spring", mode="c")
    with pytest.raises(ConfigError, match="must be a number"):
        reg.create("spring", k="x")
    with pytest.raises(ConfigError, match="no hyperparameter 'q'; allowed: k, mode"):
        reg.create("spring", q=1)


def _lrsim(*args: str, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lrsim.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_lrsim_rules_lists_every_rule_with_its_declarations():
    out = _lrsim("rules", "--json")
    assert out.returncode == 0, out.stderr
    listed = {r["name"]: r for r in json.loads(out.stdout)}
    assert set(listed) == set(rules.names())
    for name, row in listed.items():
        entry = rules.entry(name)
        assert row["family"] == entry.info["family"]
        assert row["locality"] == entry.info["locality"]
        assert set(row["hyperparameters"]) == set(entry.params)
    table = _lrsim("rules").stdout
    assert all(name in table for name in rules.names())


def test_lrsim_run_json(tmp_path):
    exp = tmp_path / "e.toml"
    exp.write_text('seed = 5\ndevice = "cpu"\n[task]\nname = "gaussian_mixture"\nsamples = 400\n'
                   '[model]\nhidden = [16]\n[rule]\nname = "feedback_alignment"\n'
                   '[train]\nsteps = 200\nreplicas = 2\n[observe]\nenabled = false\n')
    out = _lrsim("run", str(exp), "--json")
    assert out.returncode == 0, out.stderr
    runs = json.loads(out.stdout)["runs"]
    assert [r["seed"] for r in runs] == [5, 6]
    for r in runs:
        assert r["rule"] == "feedback_alignment" and r["optimizer"] == "sgd"
        assert r["status"] == "ok" and 0.0 <= r["test_accuracy"] <= 1.0
        assert r["final_loss"] > 0
        assert len(r["final_alignment_deg"]) == 2 and r["final_alignment_deg"][0] is None


@pytest.mark.parametrize("text,message", [
    ('[rule]\nname = "backprob"\n', "unknown rule 'backprob' (did you mean 'backprop'?)"),
    ('[train]\nlr = -1\n', "key 'train.lr'"),
    ('[trian]\nlr = 1\n', "unknown key 'trian'"),
    ('[rule]\nname = "hebb"\ndecay = -2\n', "hyperparameter 'decay'"),
])
def test_lrsim_run_bad_input_is_one_line(tmp_path, text, message):
    exp = tmp_path / "bad.toml"
    exp.write_text(text)
    out = _lrsim("run", str(exp))
    assert out.returncode == 2
    assert "Traceback" not in out.stderr and out.stderr.count("\n") == 1
    assert message in out.stderr


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_matches_cpu_in_float64():
    from lrsim.config import parse
    from lrsim.models.rate import train

    base = {"seed": 1, "dtype": "float64", "task": {"name": "gaussian_mixture"},
            "model": {"hidden": [32]}, "rule": {"name": "feedback_alignment"},
            "train": {"steps": 100, "replicas": 4}}
    cpu = train(parse({**base, "device": "cpu"})).context.net.weights
    gpu = train(parse({**base, "device": "cuda"})).context.net.weights
    for a, b in zip(cpu, gpu):
        torch.testing.assert_close(a, b.cpu(), rtol=1e-8, atol=1e-10)
