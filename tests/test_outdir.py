"""No user file is ever deleted or overwritten: every `--out` folder is claimed before any work
(`lrsim.outdir`), and inside its own folders lrsim touches only the names it writes.

Each case goes through the real CLI and checks the folder byte for byte afterwards."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lrsim.cli import main
from lrsim.outdir import MARK, is_own_name, is_own_temporary, temporary_name

EXPERIMENT = """\
name = "outdir"
device = "cpu"
[task]
name = "gaussian_mixture"
samples = 200
[model]
hidden = [8]
[train]
steps = 5
replicas = 2
[observe]
points = 2
"""
SCAN = EXPERIMENT.replace("replicas = 2", "replicas = 1") + "[scan]\nseed = [0, 1]\n"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def cli(argv: list[str], capsys) -> tuple[int, str]:
    code = main(argv)
    err = capsys.readouterr().err
    return code, err


@pytest.fixture
def user_folder(tmp_path: Path) -> Path:
    """A folder of the user's own files, with names that look like lrsim's."""
    u = tmp_path / "u"
    u.mkdir()
    (u / "draft.tmp").write_text("my draft")
    (u / "page.tmpl").write_text("{{ page }}")
    (u / "experiment.toml").write_text("# my own notes, not an lrsim file\n")
    (u / "report.html").write_text("<p>my report</p>")
    return u


@pytest.mark.parametrize("command", ["run", "scan", "identify", "demo"])
def test_a_folder_of_user_files_is_refused_and_left_as_it_was(command, user_folder, tmp_path,
                                                              capsys):
    exp = tmp_path / "e.toml"
    exp.write_text(SCAN if command == "scan" else EXPERIMENT)
    before = snapshot(user_folder)
    argv = {"run": ["run", str(exp), "--out", str(user_folder), "--quiet"],
            "scan": ["scan", str(exp), "--out", str(user_folder), "--quiet"],
            "identify": ["identify", str(tmp_path), "--out", str(user_folder)],
            "demo": ["demo", "--out", str(user_folder), "--study", str(exp)]}[command]
    code, err = cli(argv, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "did not write" in lines[0], err
    assert "Traceback" not in err
    assert snapshot(user_folder) == before


def test_resuming_a_scan_keeps_files_the_user_added(tmp_path, capsys):
    exp = tmp_path / "s.toml"
    exp.write_text(SCAN)
    out = tmp_path / "store"
    assert cli(["scan", str(exp), "--out", str(out), "--quiet"], capsys)[0] == 0
    assert (out / MARK).is_file()
    # the user drops notes in; a crash left one of lrsim's temporaries behind
    (out / "notes.tmp").write_text("keep me")
    (out / "figure.nc.tmpl").write_text("keep me too")
    (out / "old-results.nc").write_text("not a run file of this scan")
    leftover = temporary_name(out / "0123456789abcdef.nc")
    leftover.write_text("half a file")
    code, _ = cli(["scan", str(exp), "--out", str(out), "--quiet"], capsys)
    assert code == 0
    assert (out / "notes.tmp").read_text() == "keep me"
    assert (out / "figure.nc.tmpl").read_text() == "keep me too"
    assert (out / "old-results.nc").read_text() == "not a run file of this scan"
    assert not leftover.exists()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"ok": 2}


def test_a_scan_folder_from_before_the_mark_resumes(tmp_path, capsys):
    exp = tmp_path / "s.toml"
    exp.write_text(SCAN)
    out = tmp_path / "store"
    assert cli(["scan", str(exp), "--out", str(out), "--quiet"], capsys)[0] == 0
    (out / MARK).unlink()  # what an lrsim of before the mark left
    code, _ = cli(["scan", str(exp), "--out", str(out), "--quiet"], capsys)
    assert code == 0
    assert (out / MARK).is_file()


def test_run_writes_again_into_its_own_folder_but_not_a_scan_folder(tmp_path, capsys):
    exp = tmp_path / "e.toml"
    exp.write_text(EXPERIMENT)
    out = tmp_path / "runs"
    assert cli(["run", str(exp), "--out", str(out), "--quiet"], capsys)[0] == 0
    assert cli(["run", str(exp), "--out", str(out), "--quiet"], capsys)[0] == 0
    assert len(list(out.glob("*.nc"))) == 2
    scan = tmp_path / "s.toml"
    scan.write_text(SCAN)
    before = snapshot(out)
    code, err = cli(["scan", str(scan), "--out", str(out), "--quiet"], capsys)
    assert code == 2 and "runs folder, not a scan folder" in err
    assert snapshot(out) == before


def test_an_empty_folder_is_accepted(tmp_path, capsys):
    exp = tmp_path / "e.toml"
    exp.write_text(EXPERIMENT)
    out = tmp_path / "empty"
    out.mkdir()
    assert cli(["run", str(exp), "--out", str(out), "--quiet"], capsys)[0] == 0
    assert len(list(out.glob("*.nc"))) == 2


def test_own_names():
    assert is_own_temporary(temporary_name(Path("x/0123456789abcdef.nc")).name)
    assert is_own_temporary(temporary_name(Path("manifest.json")).name)
    for name in ("draft.tmp", "page.tmpl", "a.nc.tmp", ".x.tmp-12", "manifest.json.12.tmp"):
        assert not is_own_temporary(name), name
    assert is_own_name("0123456789abcdef.nc", "scan")
    assert not is_own_name("results.nc", "scan")
    assert not is_own_name("report.html", "scan")
    assert is_own_name("report.html", "report")
