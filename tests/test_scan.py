"""Scans: expansion of [scan] tables, grouping into jobs, and runs on a real Dask LocalCluster.

Ground truths: expansion against itertools.product / scipy's KS test / run ids computed by
`lrsim.config.replicas` for hand-written single-run experiments; stored values against each run
trained alone in-process (no Dask, no batching); resumption against an uninterrupted store.
"""

from __future__ import annotations

import copy
import itertools
import json
import logging
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from lrsim.config import parse, replicas
from lrsim.errors import ConfigError, LrsimError
from lrsim.experiment import run_experiment
from lrsim.scan import MANIFEST, expand, plan_jobs, run_scan
from lrsim.store import read_run

BASE = {"name": "scan-test", "device": "cpu", "seed": 3,
        "task": {"name": "gaussian_mixture", "samples": 400},
        "model": {"hidden": [8]}, "train": {"steps": 100, "batch_size": 16},
        "observe": {"points": 3, "probe_size": 32}}


def _exp(scan: dict | None = None, **over: dict) -> object:
    data = copy.deepcopy(BASE)
    for k, v in over.items():
        data[k] = {**data.get(k, {}), **v} if isinstance(v, dict) else v
    if scan is not None:
        data["scan"] = scan
    return parse(data)


def _toml(data: dict) -> str:
    """A small TOML writer for the test files (tables one level deep, the scan's inline)."""
    def val(v: object) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {val(x)}" for k, x in v.items()) + "}"
        return json.dumps(v)

    lines = [f"{k} = {val(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for sec, table in data.items():
        if isinstance(table, dict):
            lines.append(f"[{sec}]")
            lines += [f"{json.dumps(k)} = {val(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def _single_run_id(**values: object) -> str:
    """The id `lrsim run` gives the single experiment with these dotted values set."""
    data = copy.deepcopy(BASE)
    for key, v in values.items():
        *parents, last = key.split(".")
        node = data
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = v
    exp = parse(data)
    assert exp.train.replicas == 1
    return replicas(exp)[0].run_id


# ------------------------------------------------------------------ expansion (no cluster)


def test_grid_expansion_is_the_product_and_ids_match_lrsim_run():
    scan = {"rule.name": ["backprop", "feedback_alignment"], "model.hidden": [[8], [8, 4]],
            "train.weight_decay": [0.0, 1e-3], "seed": {"range": [5, 8]}}
    runs = expand(_exp(scan))
    want = [dict(zip(["rule.name", "model.hidden", "train.weight_decay"], p), seed=s)
            for p in itertools.product(*[scan[k] for k in list(scan)[:3]])
            for s in range(5, 8)]
    assert [r.params for r in runs] == want
    assert len({r.run_id for r in runs}) == len(runs) == 24
    for r in runs:
        assert r.run_id == _single_run_id(**r.params)
        assert (r.seed, r.weight_decay) == (r.params["seed"], r.params["train.weight_decay"])
    assert [r.run_id for r in expand(_exp(scan))] == [r.run_id for r in runs]


def test_no_scan_table_gives_the_replicas_of_lrsim_run():
    exp = _exp(train={"replicas": 3})
    runs = expand(exp)
    assert [r.run_id for r in runs] == [rep.run_id for rep in replicas(exp)]
    assert [r.seed for r in runs] == [3, 4, 5]


def test_random_expansion_is_deterministic_within_bounds_and_log_uniform():
    scan = {"train.lr": {"log_uniform": [1e-4, 1e-1]}, "model.init_scale": {"uniform": [0.5, 2]},
            "model.activation": {"choice": ["relu", "tanh"]}, "seed": [0, 1], "samples": 400}
    runs = expand(_exp(scan))
    assert len(runs) == 800
    assert [r.run_id for r in expand(_exp(scan))] == [r.run_id for r in runs]
    lrs = np.array([r.lr for r in runs[::2]])
    assert np.all((lrs >= 1e-4) & (lrs <= 1e-1))
    u = (np.log(lrs) - math.log(1e-4)) / (math.log(1e-1) - math.log(1e-4))
    assert stats.kstest(u, "uniform").pvalue > 1e-3
    assert stats.kstest((lrs - 1e-4) / (1e-1 - 1e-4), "uniform").pvalue < 1e-6  # not linear
    scales = np.array([r.init_scale for r in runs[::2]])
    assert stats.kstest((scales - 0.5) / 1.5, "uniform").pvalue > 1e-3
    acts = [r.params["model.activation"] for r in runs[::2]]
    assert 150 < acts.count("relu") < 250 and set(acts) == {"relu", "tanh"}
    # both seeds of a draw share the drawn values
    for a, b in zip(runs[::2], runs[1::2]):
        assert (a.lr, a.init_scale, a.seed, b.seed) == (b.lr, b.init_scale, 0, 1)
    # more samples keep the earlier draws; another experiment seed draws others
    more = expand(_exp({**scan, "samples": 401}))
    assert [r.run_id for r in more[:800]] == [r.run_id for r in runs]
    other = expand(_exp(scan, seed=4))
    assert {r.lr for r in other}.isdisjoint({r.lr for r in runs})


def test_switching_rules_keeps_only_hyperparameters_the_new_rule_declares():
    from lrsim.rules import rules

    runs = expand(_exp({"rule.name": ["hebb", "bcm", "oja"]}, rule={"name": "hebb",
                                                                    "decay": 0.5}))
    cfg = {r.params["rule.name"]: r.config["rule"] for r in runs}
    assert cfg["hebb"]["decay"] == 0.5
    assert cfg["bcm"]["decay"] == 0.5  # bcm declares decay too: the user's value carries
    assert cfg["bcm"]["tau"] == rules.entry("bcm").params["tau"].default
    assert "decay" not in cfg["oja"]


@pytest.mark.parametrize("scan, words", [
    ({"train.lrr": [0.1]}, ["train.lrr", "train.lr"]),
    ({"bogus": [1]}, ["bogus", "allowed"]),
    ({"train.lr": []}, ["train.lr", "empty"]),
    ({"train.lr": {"log_uniform": [0, 1]}}, ["train.lr", "0 < low"]),
    ({"train.lr": {"uniform": [1, 1]}}, ["low < high"]),
    ({"train.lr": {"normal": [0, 1]}}, ["train.lr", "log_uniform"]),
    ({"train.lr": 0.1}, ["train.lr", "list"]),
    ({"train.replicas": [1, 2]}, ["train.replicas", "seed"]),
    ({"train.lr": [0.1, 0.2], "samples": 3}, ["samples", "sampled"]),
    ({"train.lr": [0.1, 200.0]}, ["train.lr", "200"]),
    ({"rule.name": ["backprop", "backprob"]}, ["backprob", "did you mean"]),
    ({"train.lr": [0.1, 0.1]}, ["same configuration"]),
    ({"seed": {"range": 0}}, ["range", "empty"]),
])
def test_bad_scan_tables_are_refused_naming_the_key(scan, words):
    with pytest.raises(ConfigError) as err:
        expand(_exp(scan))
    for w in words:
        assert w in str(err.value)


def test_groups_batch_runs_that_differ_only_in_per_replica_values():
    scan = {"model.hidden": [[8], [4]], "train.lr": {"log_uniform": [1e-3, 1e-1]},
            "model.init_scale": {"uniform": [0.5, 1.5]}, "seed": {"range": 5}, "samples": 2}
    runs = expand(_exp(scan))
    assert len(runs) == 20 and len({r.group for r in runs}) == 2
    for a, b in itertools.combinations(runs, 2):
        assert (a.group == b.group) == (a.params["model.hidden"] == b.params["model.hidden"])
    jobs = plan_jobs(runs, max_group=4)
    assert sorted(len(j.runs) for j in jobs) == [3, 3, 3, 3, 4, 4]  # 10 -> 4 + 3 + 3
    assert sorted(r.index for j in jobs for r in j.runs) == list(range(20))
    assert all(len({r.group for r in j.runs}) == 1 for j in jobs)
    assert len(plan_jobs(runs, max_group=32)) == 2
    assert len(plan_jobs(runs, max_group=32, min_jobs=5)) == 5
    exp = jobs[0].experiment()
    assert exp.train.replicas == len(jobs[0].runs)


def test_cli_dry_run_and_bad_input(tmp_path):
    from lrsim.cli import main

    f = tmp_path / "s.toml"
    f.write_text(_toml({**BASE, "scan": {"train.lr": [0.01, 0.1], "seed": {"range": 3}}}))
    r = subprocess.run([sys.executable, "-m", "lrsim.cli", "scan", str(f), "--dry-run"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("6 runs in 1 groups -> 1 jobs")
    assert _single_run_id(**{"train.lr": 0.01, "seed": 0}) in r.stdout
    assert not any(tmp_path.glob("*.nc"))
    f.write_text(_toml({**BASE, "scan": {"train.lr": {"log_uniform": [-1, 1]}}}))
    assert main(["scan", str(f), "--out", str(tmp_path / "o")]) == 2
    assert main(["scan", str(f), "--out", str(tmp_path / "o"), "--workers", "2",
                 "--scheduler", "tcp://127.0.0.1:1"]) == 2
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ on a real cluster


def _reference(run_config: dict) -> dict:
    """A run trained alone, in this process, as `lrsim run` would train it."""
    exp = parse(run_config)
    out = run_experiment(exp, observe=True)
    return {"summary": out.summaries[0], "ds": out.datasets[0] if out.datasets else None}


def _store_values(out: Path) -> dict[str, dict]:
    values = {}
    for p in sorted(out.glob("*.nc")):
        ds = read_run(p)
        values[p.stem] = {"attrs": dict(ds.attrs), "loss": ds["loss"].values.copy()}
    return values


def _check_against_reference(out: Path, runs: list) -> None:
    values = _store_values(out)
    assert set(values) == {r.run_id for r in runs}
    for r in runs:
        ref = _reference(r.config)
        got = values[r.run_id]
        assert got["attrs"]["run_id"] == r.run_id
        assert got["attrs"]["seed"] == r.seed and math.isclose(got["attrs"]["lr"], r.lr)
        assert json.loads(got["attrs"]["config"]) == r.config
        np.testing.assert_allclose(got["attrs"]["final_loss"], ref["summary"]["final_loss"],
                                   rtol=1e-5)
        np.testing.assert_allclose(got["attrs"]["test_accuracy"],
                                   ref["summary"]["test_accuracy"], rtol=1e-6)
        if ref["ds"] is not None:
            np.testing.assert_allclose(got["loss"], ref["ds"]["loss"].values, rtol=1e-5)


def test_kill9_midway_then_resume_equals_uninterrupted_scan(tmp_path):
    """`lrsim scan` killed with SIGKILL (its whole process group: driver and workers) after
    some run files exist; the rerun completes the store, which equals each run trained alone."""
    data = {**BASE, "scan": {"model.hidden": [[8], [6], [4]], "rule.name": ["backprop",
                             "feedback_alignment"],
                             "train.lr": {"log_uniform": [1e-2, 1e-1]}, "seed": {"range": 2},
                             "samples": 2}}
    f = tmp_path / "scan.toml"
    f.write_text(_toml(data))
    out = tmp_path / "out"
    runs = expand(parse(data))
    cmd = [sys.executable, "-m", "lrsim.cli", "scan", str(f), "--out", str(out),
           "--workers", "2", "--max-group", "2", "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    try:
        while len(list(out.glob("*.nc"))) < 2:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
    partial = len(list(out.glob("*.nc")))
    assert 2 <= partial < len(runs), "the scan finished before the kill: make it longer"
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{partial} skipped" in r.stdout
    assert not [p for p in out.iterdir() if ".tmp" in p.name]
    manifest = json.loads((out / MANIFEST).read_text())
    ids = [e["run_id"] for e in manifest["runs"]]
    assert ids == [r.run_id for r in runs] and len(set(ids)) == len(ids)
    assert {e["status"] for e in manifest["runs"]} == {"ok"}
    _check_against_reference(out, runs)


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, silence_logs=logging.ERROR) as c, \
            Client(c) as client:
        # warm the workers' imports
        client.run(lambda: __import__("lrsim.models.rate.train") and None)
        yield c, client


def test_worker_killed_during_a_job_is_retried_and_all_runs_ok(tmp_path, cluster):
    lc, client = cluster
    data = {**BASE, "train": {"steps": 6000, "batch_size": 16},
            "model": {"hidden": [32]},
            "scan": {"model.hidden": [[32], [16]], "seed": {"range": 2}}}
    f = tmp_path / "scan.toml"
    f.write_text(_toml(data))
    out = tmp_path / "out"
    result: dict = {}
    t = threading.Thread(target=lambda: result.update(s=run_scan(
        f, out, scheduler=lc.scheduler_address, progress=False)))
    t.start()
    killed = None
    deadline = time.monotonic() + 300
    while killed is None and time.monotonic() < deadline and t.is_alive():
        busy = client.run(lambda dask_worker: (os.getpid(), [
            str(ts.key) for ts in dask_worker.state.executing]))
        for pid, keys in busy.values():
            if any(k.startswith("lrsim-job-") for k in keys):
                done_before = len(list(out.glob("*.nc")))
                os.kill(pid, signal.SIGKILL)
                killed = pid
                break
        time.sleep(0.05)
    t.join(timeout=900)
    assert killed is not None and done_before < 4
    s = result["s"]
    assert (s.ok, s.failed, s.total) == (4, 0, 4), s.failures
    manifest = json.loads((out / MANIFEST).read_text())
    assert [e["status"] for e in manifest["runs"]] == ["ok"] * 4
    assert sorted(p.stem for p in out.glob("*.nc")) == sorted(e["run_id"]
                                                               for e in manifest["runs"])
    assert not [p for p in out.iterdir() if ".tmp" in p.name]


def test_a_job_that_raises_is_recorded_and_the_others_complete(tmp_path, cluster):
    lc, _ = cluster
    # mnist without a data directory passes validation but raises when the job loads it
    # (lr = 100 diverges: a result, recorded `diverged`, not a failure)
    data = {**BASE, "scan": {"task.name": ["gaussian_mixture", "mnist"],
                             "train.lr": [0.05, 100.0], "seed": [0, 1]}}
    f = tmp_path / "scan.toml"
    f.write_text(_toml(data))
    out = tmp_path / "out"
    s = run_scan(f, out, scheduler=lc.scheduler_address, progress=False)
    assert (s.ok, s.diverged, s.failed, s.skipped, s.exit_code) == (2, 2, 4, 0, 1)
    manifest = json.loads((out / MANIFEST).read_text())
    status = {(e["params"]["task.name"], e["lr"]): e["status"] for e in manifest["runs"]}
    assert status == {("gaussian_mixture", 0.05): "ok", ("gaussian_mixture", 100.0): "diverged",
                      ("mnist", 0.05): "failed", ("mnist", 100.0): "failed"}
    failed = [e for e in manifest["runs"] if e["status"] == "failed"]
    assert len(failed) == 4 and all("mnist" in e["error"] and "path" in e["error"]
                                    for e in failed)
    assert len(list(out.glob("*.nc"))) == 4
    # a rerun skips the finished runs and tries the failed ones again
    s2 = run_scan(f, out, scheduler=lc.scheduler_address, progress=False)
    assert (s2.ok, s2.failed, s2.skipped) == (0, 4, 4)
    # a changed experiment under the same folder is refused, unless forced
    data["train"] = {**data["train"], "steps": 50}
    data["scan"] = {"seed": [0, 1]}
    f.write_text(_toml(data))
    with pytest.raises(LrsimError, match="--force"):
        run_scan(f, out, scheduler=lc.scheduler_address, progress=False)
    s3 = run_scan(f, out, scheduler=lc.scheduler_address, progress=False, force=True)
    assert (s3.ok, s3.failed, s3.skipped) == (2, 0, 0)
    assert len(list(out.glob("*.nc"))) == 2 and len(list((out / "superseded").glob("*.nc"))) == 4


# ---------------------------------------------------------- results come back to the client


def _write_probe(path: str) -> str:
    """On a worker: try to create a file in `path`."""
    try:
        with open(os.path.join(path, "probe.txt"), "w") as fh:
            fh.write("x")
    except OSError as err:
        return f"refused: {err.strerror}"
    return "written"


def test_workers_that_cannot_see_the_scan_folder_lose_no_run(tmp_path):
    """A real `dask worker` process that cannot open, list or create anything in the client's
    folder (as on a compute node without the client's file system): every run comes back to the
    client as bytes, is written there, and equals the run trained alone. (Before: workers wrote
    the files themselves: 'ok' in the manifest, the files elsewhere or nowhere.)"""
    from distributed import Client, LocalCluster

    client_dir, worker_dir = tmp_path / "client", tmp_path / "worker"
    client_dir.mkdir()
    worker_dir.mkdir()
    data = {**BASE, "scan": {"model.hidden": [[8], [4]], "seed": [0, 1]}}
    f = client_dir / "scan.toml"
    f.write_text(_toml(data))
    out = client_dir / "out"
    with LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None,
                      silence_logs=logging.ERROR) as lc, Client(lc) as client:
        env = {**os.environ, "LRSIM_FORBIDDEN": str(client_dir), "OMP_NUM_THREADS": "1",
               "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent.parent),
                                              str(Path(__file__).parent)])}
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", lc.scheduler_address,
             "--nthreads", "1", "--no-dashboard", "--preload", "no_shared_fs",
             "--local-directory", str(worker_dir)],
            cwd=worker_dir, env=env, stdout=subprocess.DEVNULL,
            stderr=(tmp_path / "worker.log").open("w"))
        try:
            client.wait_for_workers(1, timeout=120)
            assert client.submit(_write_probe, str(client_dir), pure=False).result() \
                .startswith("refused")
            assert client.submit(_write_probe, str(worker_dir), pure=False).result() \
                == "written"
            s = run_scan(f, out, scheduler=lc.scheduler_address, progress=False)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    assert (s.ok, s.failed, s.total) == (4, 0, 4), s.failures
    _check_against_reference(out, expand(parse(data)))
    assert not list(worker_dir.rglob("*.nc"))


# ------------------------------------------------------------- security of the embedded cluster


def test_embedded_cluster_admits_only_its_own_client():
    """The embedded cluster speaks TLS with temporary credentials: a second client without
    them (plain TCP, TLS without a certificate, TLS with another authority's certificate) cannot
    connect, so cannot submit code; the scan's own credentials can. No HTTP endpoint answers."""
    import urllib.error
    import urllib.request

    from distributed import Client
    from distributed.security import Security

    from lrsim.scan.cluster import embedded

    with embedded(workers=1) as (cluster, security):
        address = cluster.scheduler_address
        assert address.startswith("tls://127.0.0.1:")
        with Client(cluster, security=security) as own:
            assert own.submit(pow, 2, 10).result() == 1024
        for intruder in ({}, {"security": Security.temporary()}):
            with pytest.raises(Exception):  # noqa: B017 - refused by the TLS handshake
                Client(address, timeout="3s", **intruder)
        with pytest.raises(Exception):  # noqa: B017
            Client(address.replace("tls://", "tcp://"), timeout="3s")
        ports = [s.getsockname()[1] for s in cluster.scheduler.http_server._sockets.values()]
        for port in ports:
            for route in ("/health", "/info/main/workers.html", "/json/counts.json"):
                with pytest.raises(urllib.error.HTTPError) as err:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}{route}", timeout=5)
                assert err.value.code == 404


def test_embedded_workers_keep_dask_s_own_log_off_the_terminal():
    """After Ctrl-C the scheduler closes before the workers, and a worker's heartbeat then logs
    an error with a traceback to the terminal the workers share. In the worker processes of the
    embedded cluster Dask's loggers are at CRITICAL (the parent's are not touched)."""
    from distributed import Client

    from lrsim.scan.cluster import embedded

    parent = logging.getLogger("distributed.worker").getEffectiveLevel()
    with embedded(workers=1) as (cluster, security), Client(cluster, security=security) as c:
        got = c.run(lambda: (os.getpid(), {
            n: logging.getLogger(n).getEffectiveLevel()
            for n in ("distributed.worker", "distributed.core", "tornado", "asyncio")}))
    ((pid, levels),) = got.values()
    assert pid != os.getpid()
    assert set(levels.values()) == {logging.CRITICAL}
    assert logging.getLogger("distributed.worker").getEffectiveLevel() == parent


# ------------------------------------------------------------------ batch systems (dask-jobqueue)

CLUSTER = {"queue": "cpu", "account": "mylab", "walltime": "04:00:00", "cores": 8,
           "memory": "16GB", "processes": 8, "jobs": 3,
           "job_extra_directives": ["--constraint=avx2"],
           "job_script_prologue": ["source ~/lrsim/.venv/bin/activate"]}


@pytest.mark.parametrize("kind, directives", [
    ("slurm", ["#SBATCH -p cpu", "#SBATCH -A mylab", "#SBATCH -t 04:00:00",
               "#SBATCH --mem=15G", "#SBATCH --cpus-per-task=8", "#SBATCH --constraint=avx2"]),
    ("pbs", ["#PBS -q cpu", "#PBS -A mylab", "#PBS -l walltime=04:00:00",
             "#PBS -l select=1:ncpus=8:mem=15GB", "#PBS --constraint=avx2"]),
    ("sge", ["#$ -q cpu", "#$ -P mylab", "#$ -l h_rt=04:00:00", "#$ --constraint=avx2"]),
])
def test_cluster_job_script_carries_the_cluster_table(tmp_path, kind, directives):
    """`lrsim scan --cluster KIND --dry-run` renders the batch job script from the `[cluster]`
    table and `cluster.KEY=VALUE` overrides: the directives, the prologue, 8 single-threaded
    workers per job, TLS credentials, and no worker dashboard."""
    data = {**BASE, "scan": {"seed": [0, 1]}, "cluster": {**CLUSTER, "queue": "gpu"}}
    f = tmp_path / "scan.toml"
    f.write_text(_toml(data))
    r = subprocess.run([sys.executable, "-m", "lrsim", "scan", str(f), "--cluster", kind,
                        "--dry-run", "cluster.queue=cpu",
                        f"cluster.shared_temp_directory={json.dumps(str(tmp_path / 'tls'))}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    script = r.stdout.split("batch job script", 1)[1]
    for line in directives:
        assert line in script, (line, script)
    assert "source ~/lrsim/.venv/bin/activate" in script
    assert "--nworkers 8" in script and "--nthreads 1" in script and "--no-dashboard" in script
    assert "--tls-ca-file" in script and "tls://" in script
    assert "#SBATCH -p gpu" not in script and "#PBS -q gpu" not in script
    assert not (tmp_path / "tls").exists() or not list((tmp_path / "tls").iterdir())


def test_scan_through_dask_jobqueue_on_loopback(tmp_path):
    """The `--cluster` path end to end with dask-jobqueue's local job runner (the job script
    run as local processes: same cluster class hierarchy, same TLS, same worker command): two
    jobs of one worker each on the loopback interface; every run equals the run trained
    alone."""
    data = {**BASE, "scan": {"model.hidden": [[8], [4]], "seed": [0, 1]},
            "cluster": {"cores": 1, "processes": 1, "jobs": 2, "memory": "2GB",
                        "interface": "lo", "shared_temp_directory": str(tmp_path / "tls"),
                        "local_directory": str(tmp_path / "workers")}}
    f = tmp_path / "scan.toml"
    f.write_text(_toml(data))
    out = tmp_path / "out"
    s = run_scan(f, out, cluster="local", progress=False)
    assert (s.ok, s.failed, s.total) == (4, 0, 4), s.failures
    _check_against_reference(out, expand(parse(data)))
    # a [cluster] table does not change what is trained: the same ids as without it
    assert [r.run_id for r in expand(parse(data))] == [
        r.run_id for r in expand(parse({k: v for k, v in data.items() if k != "cluster"}))]


def test_cluster_without_dask_jobqueue_names_the_extra(tmp_path):
    f = tmp_path / "scan.toml"
    f.write_text(_toml({**BASE, "scan": {"seed": [0, 1]}}))
    code = ("import sys; sys.modules['dask_jobqueue'] = None; from lrsim.cli import main; "
            f"sys.exit(main(['scan', {str(f)!r}, '--out', {str(tmp_path / 'o')!r}, "
            "'--cluster', 'slurm']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    assert r.stderr.strip() == ("lrsim: error: --cluster needs dask-jobqueue: pip install "
                                "'lrsim[cluster]'")
    assert not (tmp_path / "o").exists()


# ------------------------------------------------------------------ Ctrl-C


def test_ctrl_c_is_one_line_exit_130_and_the_rerun_resumes(tmp_path):
    """SIGINT to the whole process group (what Ctrl-C in a terminal sends) once a run file
    exists: one line on stderr, exit 130, a consistent folder (manifest: finished runs ok, the
    rest pending; no temporary files); the rerun finishes the rest."""
    data = {**BASE, "train": {"steps": 2000, "batch_size": 16},
            "scan": {"model.hidden": [[8], [6], [4], [3]], "seed": [0, 1], "max_group": 1}}
    f = tmp_path / "scan.toml"
    f.write_text(_toml(data))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lrsim", "scan", str(f), "--out", str(out), "--workers", "2",
           "--quiet"]
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    try:
        while not list(out.glob("*.nc")):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert "rerun the same command to resume" in err
    manifest = json.loads((out / MANIFEST).read_text())
    files = {p.stem for p in out.glob("*.nc")}
    assert {e["run_id"] for e in manifest["runs"] if e["status"] == "ok"} <= files
    assert {e["status"] for e in manifest["runs"]} <= {"ok", "pending"}
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert f"{len(files)} skipped" in r.stdout
    assert json.loads((out / MANIFEST).read_text())["counts"] == {"ok": 8}
