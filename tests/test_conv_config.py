"""`[model] conv` in experiment files: accepted forms, and every refusal as one line, exit 2,
nothing written (through the CLI)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lrsim.cli import main
from lrsim.config import parse, run_id

BASE = """name = "c"
seed = 0
device = "cpu"
[task]
name = "digits"
[model]
conv = [4, 6]
pool = 2
hidden = []
[rule]
name = "backprop"
[train]
steps = 3
replicas = 2
"""


def test_conv_keys_parse_and_mlp_run_ids_do_not_change():
    exp = parse({"model": {"conv": [16, 32], "kernel": [5, 3], "pool": 2, "hidden": []}})
    assert exp.model.conv == [16, 32] and exp.model.kernel == [5, 3]
    assert exp.resolved()["model"]["pool_type"] == "max"
    # without conv layers the conv keys are not part of the resolved experiment (run ids)
    mlp = parse({"model": {"hidden": [8]}}).resolved()
    assert not {"conv", "kernel", "stride", "padding", "pool", "pool_type"} & set(mlp["model"])
    assert run_id(mlp) == run_id(parse({"model": {"hidden": [8]}}).resolved())


CATALOGUE = [
    ("hebbian-rule", BASE.replace('"backprop"', '"oja"'),
     "rule 'oja' cannot train conv layers: their stabilising terms"),
    ("flat-task", BASE.replace('"digits"', '"gaussian_mixture"'),
     "[model] conv needs an image task"),
    ("no-positions-left", BASE.replace("conv = [4, 6]", "conv = [4, 6, 8, 8]"),
     "pool 2 leaves no positions"),
    ("kernel-too-large", BASE.replace("pool = 2", "kernel = 11\npadding = 0"),
     "does not fit an input of 8x8"),
    ("list-length", BASE.replace("pool = 2", "pool = [2, 2, 2]"),
     "key 'model.pool': lists 3 values for 2 conv layers"),
    ("zero-stride", BASE.replace("pool = 2", "stride = 0"), "key 'model.stride': must be >= 1"),
    ("unknown-pool-type", BASE.replace("pool = 2", 'pool_type = "median"'),
     "model.pool_type"),
    ("no-layers", BASE.replace("conv = [4, 6]", "conv = []"),
     "key 'model.hidden': must list at least one hidden layer"),
    ("spiking", BASE.replace('name = "c"', 'name = "c"\nsubstrate = "spiking"'),
     "run on the rate substrate only"),
    ("missing-cifar", BASE.replace('name = "digits"', 'name = "cifar10"\npath = "/nonexistent/c"'),
     "/nonexistent/c"),
]


@pytest.mark.parametrize("text,fragment", [c[1:] for c in CATALOGUE],
                         ids=[c[0] for c in CATALOGUE])
def test_conv_refusals_are_one_line(tmp_path: Path, capsys, text: str, fragment: str):
    exp_file = tmp_path / "exp.toml"
    exp_file.write_text(text)
    out = tmp_path / "out"
    code = main(["run", str(exp_file), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("lrsim: error: ") and fragment in lines[0], lines[0]
    assert sorted(os.listdir(tmp_path)) == ["exp.toml"]
