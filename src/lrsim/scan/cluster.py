"""Where a scan's jobs run: a Dask client on one of three kinds of cluster.

    embedded (default)    a LocalCluster of `--workers` processes on 127.0.0.1, one thread each,
                          with TLS and temporary credentials (`Security.temporary()`): only this
                          client can submit work; the HTTP endpoints (dashboard, metrics) are
                          off unless `--dashboard` asks for the dashboard
    --scheduler ADDRESS   a running cluster (tcp:// or tls:// address, or a scheduler file);
                          TLS files with `--tls-ca-file`, `--tls-cert`, `--tls-key`
    --cluster KIND        a batch system through dask-jobqueue (slurm, pbs, sge, lsf; `local`
                          runs the same job machinery as local processes): settings in the
                          experiment's `[cluster]` table (`lrsim.config.ClusterSpec`)

`check_scheduler` probes a given scheduler before anything is written (one line, in seconds,
when nothing listens there).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import sys
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from lrsim.config import ClusterSpec
from lrsim.errors import ConfigError, LrsimError
from lrsim.scan.worker_logging import quiet_loggers

JOBQUEUE_KINDS = ("slurm", "pbs", "sge", "lsf", "local")
_JOBQUEUE_CLASS = {"slurm": "SLURMCluster", "pbs": "PBSCluster", "sge": "SGECluster",
                   "lsf": "LSFCluster"}
_ACCOUNT_KEYWORD = {"slurm": "account", "pbs": "account", "sge": "project", "lsf": "project"}
CONNECT_TIMEOUT_S = 30
PROBE_TIMEOUT_S = 5
log = logging.getLogger("lrsim")
_QUIET_ROUTES = {"distributed.scheduler.http.routes": [],
                 "distributed.worker.http.routes": []}


@dataclass(frozen=True)
class Where:
    """The cluster a scan asks for: embedded (`workers`), `scheduler`, or `cluster` (a
    dask-jobqueue kind with its `spec`); TLS files for a user's scheduler; the dashboard."""

    workers: int | None = None
    scheduler: str | None = None
    cluster: str | None = None
    spec: ClusterSpec | None = None
    tls_ca_file: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    dashboard: str | None = None

    def check(self) -> None:
        """Refuse contradictory or unusable choices (one line, nothing started)."""
        if self.workers is not None and self.workers < 1:
            raise ConfigError(f"--workers must be >= 1, got {self.workers}")
        if self.scheduler and self.cluster:
            raise ConfigError("--scheduler uses a running cluster, --cluster starts one; give "
                              "one or the other")
        if self.workers is not None and (self.scheduler or self.cluster):
            raise ConfigError("--workers sizes the embedded cluster; with --scheduler or "
                              "--cluster the cluster's own workers are used (give one or the "
                              "other)")
        tls = [f for f in (self.tls_ca_file, self.tls_cert, self.tls_key) if f]
        if tls and not self.scheduler:
            raise ConfigError("--tls-ca-file, --tls-cert and --tls-key secure a --scheduler; "
                              "the embedded cluster makes its own credentials")
        for flag, f in (("--tls-ca-file", self.tls_ca_file), ("--tls-cert", self.tls_cert),
                        ("--tls-key", self.tls_key)):
            if f and not Path(f).is_file():
                raise ConfigError(f"{flag} '{f}' is not a file")
        if self.cluster is not None and self.cluster not in JOBQUEUE_KINDS:
            raise ConfigError(f"--cluster '{self.cluster}' is not known; allowed: "
                              f"{', '.join(JOBQUEUE_KINDS)}")
        if self.dashboard is not None:
            try:
                import bokeh  # noqa: F401
            except ImportError:
                raise ConfigError("--dashboard needs the bokeh package (pip install "
                                  "bokeh)") from None
        if self.cluster:
            jobqueue_module()
        if self.scheduler:
            check_scheduler(self.scheduler)


def jobqueue_module() -> Any:
    """dask_jobqueue, or one line naming the extra that installs it."""
    try:
        import dask_jobqueue
    except ImportError:
        raise ConfigError("--cluster needs dask-jobqueue: pip install 'lrsim[cluster]'") from None
    return dask_jobqueue


def _scheduler_address(scheduler: str) -> str:
    """The address of `scheduler` (an address, or the path of a scheduler file)."""
    if "://" in scheduler:
        return scheduler
    path = Path(scheduler)
    if not path.is_file():
        raise ConfigError(f"--scheduler '{scheduler}' is neither an address "
                          "(tcp://HOST:PORT, tls://HOST:PORT) nor a scheduler file")
    try:
        address = json.loads(path.read_text())["address"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ConfigError(f"--scheduler '{scheduler}' is not a Dask scheduler file (JSON with "
                          "an 'address')") from None
    if not isinstance(address, str) or "://" not in address:
        raise ConfigError(f"--scheduler '{scheduler}': its address {address!r} is not "
                          "PROTOCOL://HOST:PORT")
    return address


def check_scheduler(scheduler: str) -> str:
    """Probe the scheduler's port (a plain TCP connect, `PROBE_TIMEOUT_S`): refuse at once an
    address that nothing listens on, before anything is written. Returns the address."""
    address = _scheduler_address(scheduler)
    parts = urlsplit(address)
    if parts.scheme not in ("tcp", "tls"):
        raise ConfigError(f"--scheduler {address}: protocol '{parts.scheme}' is not supported; "
                          "use tcp:// or tls://")
    try:
        host, port = parts.hostname, parts.port
    except ValueError:
        host, port = None, None
    if not host or not port:
        raise ConfigError(f"--scheduler {address}: give HOST:PORT, e.g. tcp://10.0.0.1:8786")
    try:
        with socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S):
            pass
    except OSError as err:
        why = err.strerror or type(err).__name__
        raise LrsimError(f"--scheduler {address}: cannot connect ({why}); is the scheduler "
                         "running and reachable from here?") from None
    return address


def user_security(where: Where) -> Any:
    """The Security for a user's scheduler: the TLS files given, else Dask's configuration
    (`distributed.comm.tls.*`, e.g. from ~/.config/dask)."""
    from distributed.security import Security

    if not any((where.tls_ca_file, where.tls_cert, where.tls_key)):
        return Security()
    return Security(tls_ca_file=where.tls_ca_file, tls_client_cert=where.tls_cert,
                    tls_client_key=where.tls_key, require_encryption=True)


@contextlib.contextmanager
def _sigint_ignored() -> Iterator[None]:
    """SIGINT ignored while worker processes are spawned (they inherit it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


@contextlib.contextmanager
def embedded(workers: int | None = None, dashboard: str | None = None) -> Iterator[Any]:
    """A LocalCluster of `workers` processes (default: cores), one thread each, on 127.0.0.1,
    secured with TLS and temporary credentials; yields (cluster, its Security)."""
    import dask
    from distributed import LocalCluster
    from distributed.security import Security

    n = workers or os.cpu_count() or 1
    log.info("starting an embedded Dask cluster: %d worker process(es) on 127.0.0.1, TLS with "
             "temporary credentials%s", n, f", dashboard on {dashboard}" if dashboard else "")
    security = Security.temporary()
    config = {} if dashboard else dict(_QUIET_ROUTES)
    with dask.config.set(config), warnings.catch_warnings(), _sigint_ignored():
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True,
                               host="127.0.0.1", protocol="tls://", security=security,
                               dashboard_address=dashboard or None,
                               silence_logs=logging.ERROR,
                               preload=["lrsim.scan.worker_logging"])
    try:
        yield cluster, security
    finally:
        quietly(cluster.close)


def quietly(close: Any) -> None:
    """Close a client or cluster without Dask's shutdown chatter (a job cancelled on a worker
    that is going away logs errors that mean nothing to the user)."""
    loggers = quiet_loggers()
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            close()
    except Exception:  # noqa: BLE001 - closing is best effort; the results are on disk
        from distributed import Client

        owner = getattr(close, "__self__", None)
        if isinstance(owner, Client):  # else its __del__ tries again on a closed event loop
            owner.status = "closed"
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def tls_directory(spec: ClusterSpec) -> Path:
    """Where dask-jobqueue puts the workers' temporary credentials (a folder the compute nodes
    can read: `shared_temp_directory`, default ~/.cache/lrsim/tls)."""
    return Path(spec.shared_temp_directory or Path.home() / ".cache" / "lrsim" / "tls") \
        .expanduser()


@contextlib.contextmanager
def jobqueue(kind: str, spec: ClusterSpec | None, dashboard: str | None = None,
             tls_dir: Path | None = None) -> Iterator[Any]:
    """`jobqueue_cluster`, closed on exit, with the credential files it wrote removed."""
    spec = spec or ClusterSpec()
    cluster = jobqueue_cluster(kind, spec, dashboard, tls_dir or tls_directory(spec))
    try:
        yield cluster
    finally:
        quietly(cluster.close)
        # dask-jobqueue keeps the credential files open as `_job_<key>` temporary files;
        # closing them deletes them now rather than whenever the cluster is collected
        for name in [n for n in vars(cluster) if n.startswith("_job_")]:
            with contextlib.suppress(OSError, AttributeError):
                getattr(cluster, name).close()


def jobqueue_cluster(kind: str, spec: ClusterSpec | None, dashboard: str | None = None,
                     tls_dir: Path | None = None) -> Any:
    """The dask-jobqueue cluster for `kind` with the `[cluster]` settings (no job submitted
    yet: `cluster.job_script()` shows what would be). Close it with `jobqueue` (which also
    removes the credential files)."""
    import dask

    jq = jobqueue_module()
    spec = spec or ClusterSpec()
    if kind == "local":
        from dask_jobqueue.local import LocalCluster as cls
    else:
        cls = getattr(jq, _JOBQUEUE_CLASS[kind])
    kwargs: dict[str, Any] = {
        "cores": spec.cores, "memory": spec.memory,
        "processes": spec.processes or spec.cores,
        "job_name": "lrsim", "walltime": spec.walltime,
        "job_extra_directives": list(spec.job_extra_directives),
        "job_script_prologue": list(spec.job_script_prologue),
        "worker_extra_args": ["--no-dashboard"],
        "scheduler_options": {"dashboard_address": dashboard} if dashboard else {},
        "silence_logs": "error",
    }
    if spec.queue is not None and kind != "local":
        kwargs["queue"] = spec.queue
    if spec.account is not None and kind != "local":
        kwargs[_ACCOUNT_KEYWORD[kind]] = spec.account
    for key in ("local_directory", "log_directory", "interface", "python"):
        if getattr(spec, key) is not None:
            kwargs[key] = getattr(spec, key)
    if spec.security:
        shared = tls_dir or tls_directory(spec)
        try:
            shared.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as err:
            raise ConfigError(f"[cluster] shared_temp_directory '{shared}': cannot create: "
                              f"{err.strerror or err}") from None
        kwargs.update(security=True, shared_temp_directory=str(shared))
    config = {} if dashboard else dict(_QUIET_ROUTES)
    with dask.config.set(config), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Port .* is already in use")
        try:
            return cls(**kwargs)
        except (ValueError, TypeError, OSError) as err:
            raise ConfigError(f"[cluster] ({kind}): {err}") from None


def _ignore_late_client_close() -> None:
    """A Dask Client collected after its event loop closed (after Ctrl-C) reports 'IOLoop is
    closed' from `__del__` as an unraisable exception: drop that one report, pass on all
    others."""
    original = sys.unraisablehook
    if getattr(original, "lrsim_filter", False):
        return

    def hook(unraisable: Any) -> None:
        if (isinstance(unraisable.exc_value, RuntimeError)
                and "IOLoop is closed" in str(unraisable.exc_value)):
            return
        original(unraisable)

    hook.lrsim_filter = True  # type: ignore[attr-defined]
    sys.unraisablehook = hook


@contextlib.contextmanager
def client_for(where: Where) -> Iterator[tuple[Any, int]]:
    """A connected Dask client and the number of worker slots to plan for."""
    from distributed import Client

    _ignore_late_client_close()

    if where.scheduler:
        security = user_security(where)
        address = _scheduler_address(where.scheduler)
        log.info("connecting to the Dask scheduler at %s", address)
        try:
            client = Client(address, timeout=f"{CONNECT_TIMEOUT_S}s", security=security)
        except (OSError, TimeoutError, ValueError) as err:
            raise LrsimError(f"--scheduler {address}: cannot connect "
                             f"({str(err).splitlines()[0] if str(err) else err})") from None
        try:
            yield client, sum(client.nthreads().values()) or 1
        finally:
            quietly(client.close)
        return
    if where.cluster:
        spec = where.spec or ClusterSpec()
        with jobqueue(where.cluster, spec, where.dashboard) as cluster:
            log.info("%s: submitting %s job(s) of %d worker(s); scheduler %s", where.cluster,
                     f"up to {spec.maximum_jobs}" if spec.maximum_jobs else spec.jobs,
                     spec.processes or spec.cores, cluster.scheduler_address)
            if spec.maximum_jobs:
                cluster.adapt(minimum_jobs=1, maximum_jobs=spec.maximum_jobs)
            else:
                cluster.scale(jobs=spec.jobs)
            client = Client(cluster, security=cluster.security)
            try:
                per_job = spec.processes or spec.cores
                yield client, per_job * (spec.maximum_jobs or spec.jobs)
            finally:
                quietly(client.close)
        return
    with embedded(where.workers, where.dashboard) as (cluster, security):
        client = Client(cluster, security=security)
        try:
            yield client, sum(client.nthreads().values()) or 1
        finally:
            quietly(client.close)
