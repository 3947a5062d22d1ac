"""The trainer's real step vs what a user would write instead, interleaved in one process.

Networks 64 -> w -> w -> 10 (relu, cross-entropy, bias), batch 32 drawn per network from the
digits training set, all K networks at lr 0.01. Variants (`benchmarks/peers.py`):

  lrsim   the trainer itself (`lrsim.models.rate.train.train`), observers off: the timed steps
          are the trainer's own loop (sampling, forward, rule, optimizer, update, divergence
          check every 25 steps), with its default replica chunking (`chunk = "auto"`,
          `lrsim.models.rate.chunks`; `--trainer-chunks C` forces chunks of C). A timing
          observer (`Interleave`) is called by the trainer every `every` steps; it reads the
          clock, runs the other variants for `every` steps each, and reads the clock again, so
          every round times all variants back to back under the same load.
  whole   the trainer's own step on the whole batch at once (`chunk = None`; `TrainerStep`):
          the A/B of replica chunking.
  loop    K `torch.nn` MLPs, autograd and `torch.optim`, one at a time in a Python loop
          (timed on min(K, 8) networks and scaled to K: they are independent).
  vmap    the peer: `torch.func.vmap(grad(functional_call))` over the K stacked MLPs, one
          `torch.optim` optimizer (foreach) over the stacked tensors.
  fused   a hand-written prototype of the step with the weight gradient fused into the update
          (`FusedStep`); `--chunk C` also runs it C replicas at a time.
  biotorch BioTorch's feedback alignment, per network (rule feedback_alignment only; skipped
          when BioTorch is not importable).
  floor   the step's matrix products alone (`MatmulFloor`), chunked as the trainer is: a lower
          bound on the time of any step that does this step's matmuls with torch's batched
          matmul, so vmap / floor is the most any such step could lead the vmap peer by.

Clock: `time.thread_time` (CPU time of this thread) with one torch thread, so time the machine
gives to other processes is not counted. Figures: per variant the median seconds per step over
the rounds, and per round the ratio variant / lrsim (median and range). Peak: a 1024^3 float32
matmul timed in the same process between points; "% peak" = the step's matmul FLOPs (forward,
error propagation below the output layer, weight gradients) / time / peak.

    OMP_NUM_THREADS=1 nice -n 5 .venv/bin/python benchmarks/bench_batched.py \
        [--widths 32 128 512] [--ks 16 64 256 1024] [--optimizers sgd momentum adam] \
        [--rule backprop] [--rounds 7] [--every 25] [--variants loop vmap whole fused] \
        [--trainer-chunks C] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from peers import NNLoop, VmapPeer, biotorch_fa  # noqa: E402

from lrsim.config import parse, replicas  # noqa: E402
from lrsim.models.rate import RateNetwork  # noqa: E402
from lrsim.models.rate.chunks import chunk_size  # noqa: E402
from lrsim.models.rate.train import (  # noqa: E402
    DIVERGENCE_CHECK_EVERY,
    _mark_divergence,
    _train_step,
    start,
    train,
)
from lrsim.models.tasks import tasks  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BATCH, N_IN, N_OUT, LR = 32, 64, 10, 0.01
LOOP_SAMPLE = 8


def experiment(width: int, k: int, optimizer: str, rule: str, steps: int):
    return parse({"name": "bench", "device": "cpu", "seed": 0, "task": {"name": "digits"},
                  "model": {"hidden": [width, width], "activation": "relu"},
                  "rule": {"name": rule},
                  "train": {"optimizer": optimizer, "lr": LR, "batch_size": BATCH,
                            "steps": steps, "replicas": k}})


def step_flops(width: int, k: int, batch: int = BATCH) -> float:
    """2 x multiply-adds of one step: forward, error propagation (not below layer 1), weight
    gradients."""
    sizes = [(N_IN, width), (width, width), (width, N_OUT)]
    fwd = sum(a * b for a, b in sizes)
    back = sum(a * b for a, b in sizes[1:])
    return 2.0 * batch * k * (fwd + back + fwd)


def peak_flops(n: int = 1024, reps: int = 5) -> float:
    """float32 matmul FLOP/s on this thread: best of `reps` n^3 products."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t = time.thread_time()
        a @ b
        best = min(best, time.thread_time() - t)
    return 2.0 * n**3 / best


class TrainerStep:
    """The trainer's own step (`train._train_step`, the divergence check every 25 steps as in
    `train`) on its own K networks of `exp`, outside `train` so that it can be interleaved;
    `chunk` as `train`'s (None: the whole batch at once)."""

    def __init__(self, exp, chunk: int | str | None):  # noqa: ANN001
        self.loop = start(exp, replicas(exp), torch.device("cpu"), torch.float32, chunk)
        self.step = 0

    @torch.no_grad()
    def run(self, n: int) -> None:
        lp = self.loop
        for _ in range(n):
            if self.step % DIVERGENCE_CHECK_EVERY == 0:
                _mark_divergence(lp.ctx, lp.first_bad, lp.lr, self.step)
            _train_step(lp.ctx, lp.sampler.next(), lp.noise, lp.lr, lp.first_bad, self.step)
            self.step += 1


class FusedStep:
    """Prototype: the trainer's backprop step with the weight gradient fused into the update.

    sgd       W <- W - lr/N m^T h           one `baddbmm_` into W, -lr/N folded into m^T
    momentum  v <- mu v + m^T h / N          one `baddbmm_` into v (beta = mu); W -= lr v
    adam      g = m^T h / N (materialised: v needs g^2), then the moment and weight updates
              in one compiled loop (`torch.compile`) or `torch._foreach_*` ops
    `chunk` runs the whole step (forward, credit, update) on C replicas at a time, so a chunk's
    weights can stay in cache between the phases.
    """

    def __init__(self, x: torch.Tensor, y: torch.Tensor, width: int, k: int, optimizer: str,
                 chunk: int | None = None, adam_impl: str = "ops", transposed: bool = False):
        self.x, self.y, self.k = x, y, k
        self.transposed = transposed
        self.net = RateNetwork([N_IN, width, width, N_OUT], "relu", seeds=list(range(k)))
        self.lr = torch.full((k, 1, 1), LR)
        self.opt, self.chunk = optimizer, chunk or k
        params = self.net.weights + self.net.biases
        self.s1 = [torch.zeros_like(p) for p in params] if optimizer != "sgd" else None
        self.s2 = [torch.zeros_like(p) for p in params] if optimizer == "adam" else None
        self.t = 0
        self.gen = torch.Generator().manual_seed(0)
        self.adam_impl = adam_impl
        if optimizer == "adam" and adam_impl == "compile":
            self._adam = torch.compile(_adam_update, dynamic=False)
        else:
            self._adam = _adam_update

    def run(self, n: int) -> None:
        for _ in range(n):
            idx = torch.randint(0, len(self.x), (self.k * BATCH,), generator=self.gen)
            x = self.x.index_select(0, idx).view(self.k, BATCH, -1)
            t = self.y.index_select(0, idx).view(self.k, BATCH, -1)
            self.t += 1
            for a in range(0, self.k, self.chunk):
                sl = slice(a, a + self.chunk)
                self._step(sl, x[sl], t[sl])

    def _step(self, sl: slice, x: torch.Tensor, t: torch.Tensor) -> None:
        ws = [w[sl] for w in self.net.weights]
        bs = [b[sl] for b in self.net.biases]
        lr = self.lr[sl]
        pre, ders, h = [], [], x
        n_l = len(ws)
        for l, (w, b) in enumerate(zip(ws, bs)):
            pre.append(h)
            if self.transposed:  # z^T = W h^T + b: (K, n_out, N) in memory, z a view
                z = torch.baddbmm(b.unsqueeze(2), w, h.transpose(1, 2)).transpose(1, 2)
            else:
                z = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if l < n_l - 1:
                h = torch.relu(z)
                ders.append(h.sign())  # relu'(z) as 0/1 in one pass (`z > 0` + cast: two)
            else:
                h = z
        zs = h - h.amax(-1, keepdim=True)  # softmax by hand: log_softmax is slow on AVX-512
        ez = zs.exp()
        m = [ez / ez.sum(-1, keepdim=True) - t]
        for l in range(n_l - 2, -1, -1):
            m.insert(0, torch.bmm(m[0], ws[l + 1]) * ders[l])
        inv_n = 1.0 / x.shape[1]
        for l in range(n_l):
            mt = m[l].transpose(1, 2)
            if self.opt == "sgd":
                ws[l].baddbmm_(mt * (-lr * inv_n), pre[l])
                bs[l].sub_(lr[:, :, 0] * m[l].mean(1))
                continue
            if self.opt == "momentum":
                v, vb = self.s1[l][sl], self.s1[n_l + l][sl]
                v.baddbmm_(mt * inv_n, pre[l], beta=0.9)
                vb.mul_(0.9).add_(m[l].mean(1))
                ws[l].addcmul_(lr, v, value=-1)
                bs[l].addcmul_(lr[:, :, 0], vb, value=-1)
                continue
            g = torch.bmm(mt * inv_n, pre[l])
            c1, c2 = 1 - 0.9**self.t, 1 - 0.999**self.t
            self._adam(ws[l], g, self.s1[l][sl], self.s2[l][sl], lr, c1, c2)
            self._adam(bs[l], m[l].mean(1), self.s1[n_l + l][sl], self.s2[n_l + l][sl],
                       lr[:, :, 0], c1, c2)


class MatmulFloor:
    """The matrix products of one backprop step and nothing else, on preallocated tensors:

    forward          h_l = b_l + h_{l-1} W_l^T          (`baddbmm`, out= a kept buffer)
    error            d_{l-1} = d_l W_l, l = L..2        (`bmm`)
    weight update    W_l += alpha d_l^T h_{l-1}         (`baddbmm_` into W: no gradient tensor)

    the same products (and FLOPs, `step_flops`) as the trainer's step, without the
    nonlinearity, the loss, the biases' update, the minibatch gather or any optimizer state; d_L
    is a fixed random error and alpha tiny, so the values stay bounded. `chunk` runs it on C
    replicas at a time ("auto": the trainer's own choice for these weights, `chunk_size`).
    Any step built of these products with torch's batched matmul takes at least this long."""

    def __init__(self, width: int, k: int, chunk: int | str | None):
        sizes = [N_IN, width, width, N_OUT]
        gen = torch.Generator().manual_seed(0)
        self.w = [torch.randn(k, o, i, generator=gen) / i**0.5
                  for i, o in zip(sizes[:-1], sizes[1:])]
        self.b = [torch.zeros(k, 1, o) for o in sizes[1:]]
        self.x = torch.randn(k, BATCH, N_IN, generator=gen)
        self.h = [torch.empty(k, BATCH, o) for o in sizes[1:]]
        self.d = [torch.empty(k, BATCH, o) for o in sizes[1:]]
        self.d[-1].normal_(generator=gen)
        if chunk == "auto":
            chunk = chunk_size(self.w, True, "cpu", batch=BATCH)
        size = int(chunk or k)
        self.spans = [slice(a, a + size) for a in range(0, k, size)]

    def run(self, n: int) -> None:
        n_l = len(self.w)
        for _ in range(n):
            for sl in self.spans:
                h = [self.x[sl]]
                for l in range(n_l):
                    torch.baddbmm(self.b[l][sl], h[l], self.w[l][sl].transpose(1, 2),
                                  out=self.h[l][sl])
                    h.append(self.h[l][sl])
                for l in range(n_l - 1, 0, -1):
                    torch.bmm(self.d[l][sl], self.w[l][sl], out=self.d[l - 1][sl])
                for l in range(n_l):
                    self.w[l][sl].baddbmm_(self.d[l][sl].transpose(1, 2), h[l], alpha=-1e-7)


def _adam_update(w: torch.Tensor, g: torch.Tensor, m: torch.Tensor, v: torch.Tensor,
                 lr: torch.Tensor, c1: float, c2: float) -> None:
    """m <- b1 m + (1-b1) g; v <- b2 v + (1-b2) g^2; w -= lr m/c1 / (sqrt(v/c2) + eps)."""
    m.lerp_(g, 0.1)
    v.mul_(0.999).addcmul_(g, g, value=0.001)
    w.sub_(lr * (m / c1) / ((v / c2).sqrt() + 1e-8))


class Interleave:
    """An lrsim observer that times the trainer between its calls and runs the other variants
    in between (see the module docstring)."""

    def __init__(self, peers: dict[str, Callable[[int], None]], every: int, rounds: int,
                 warm: int):
        self.peers, self.every, self.rounds, self.warm = peers, every, rounds, warm
        self.times: dict[str, list[float]] = {"lrsim": [], **{p: [] for p in peers}}
        self.mark: float | None = None
        self.round = 0

    def steps(self, total_steps: int) -> list[int]:
        return [self.warm + i * self.every for i in range(self.rounds + 1)]

    def start(self, ctx) -> None:  # noqa: ANN001
        pass

    def record(self, step: int, ctx) -> None:  # noqa: ANN001
        now = time.thread_time()
        first = self.mark is None
        if not first:
            self.times["lrsim"].append((now - self.mark) / self.every)
        names = list(self.peers)
        names = names[self.round % len(names):] + names[:self.round % len(names)] if names \
            else []
        for name in names:
            t = time.thread_time()
            with torch.enable_grad():  # the trainer runs under no_grad; autograd peers need it
                self.peers[name](self.every if not first else max(1, self.every // 5))
            if not first:
                self.times[name].append((time.thread_time() - t) / self.every)
        self.round += 1
        self.mark = time.thread_time()


def measure(width: int, k: int, optimizer: str, rule: str, variants: list[str], rounds: int,
            every: int, chunk: int | None, adam_impl: str, trainer_chunk: int | str = "auto"
            ) -> tuple[dict[str, list[float]], int | None]:
    """Per variant the seconds per step of every round; the trainer's replicas per chunk."""
    task = tasks.create("digits")
    x = task.x_train.float()
    labels, onehot = task.labels_train, task.y_train.float()
    peers: dict[str, Callable[[int], None]] = {}
    scale: dict[str, float] = {}
    if "loop" in variants:
        n = min(k, LOOP_SAMPLE)
        peers["loop"] = NNLoop(x, labels, width, n, BATCH, optimizer, LR).run
        scale["loop"] = k / n
    if "vmap" in variants:
        peers["vmap"] = VmapPeer(x, labels, width, k, BATCH, optimizer, LR).run
    if "whole" in variants:
        peers["whole"] = TrainerStep(experiment(width, k, optimizer, rule, 1), None).run
    if "fused" in variants and rule == "backprop":
        peers["fused"] = FusedStep(x, onehot, width, k, optimizer, None, adam_impl).run
        peers["fusedT"] = FusedStep(x, onehot, width, k, optimizer, None, adam_impl,
                                    transposed=True).run
        if chunk and chunk < k:
            peers[f"fused/{chunk}"] = FusedStep(x, onehot, width, k, optimizer, chunk,
                                                adam_impl).run
    if "floor" in variants:
        peers["floor"] = MatmulFloor(width, k, trainer_chunk).run
    if "biotorch" in variants and rule == "feedback_alignment":
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            n = min(k, LOOP_SAMPLE)
            run = biotorch_fa(x, labels, width, n, BATCH, optimizer, LR)
        if run is not None:
            peers["biotorch"] = run
            scale["biotorch"] = k / n
    warm = 2 * every
    ob = Interleave(peers, every, rounds, warm)
    result = train(experiment(width, k, optimizer, rule, warm + rounds * every), observers=[ob],
                   chunk=trainer_chunk)
    return ({name: [t * scale.get(name, 1.0) for t in ts] for name, ts in ob.times.items()},
            result.extra["chunk"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[32, 128, 512])
    ap.add_argument("--ks", type=int, nargs="+", default=[16, 64, 256, 1024])
    ap.add_argument("--optimizers", nargs="+", default=["sgd"])
    ap.add_argument("--rule", default="backprop")
    ap.add_argument("--variants", nargs="+", default=["loop", "vmap", "fused"],
                    help="loop vmap whole fused biotorch floor (see the module docstring)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--every", type=int, default=25,
                    help="steps per timed interval (25 = the trainer's divergence-check period)")
    ap.add_argument("--max-flops", type=float, default=2.0e10,
                    help="skip points whose step exceeds this many FLOPs (width 512, K 1024)")
    ap.add_argument("--chunk", type=int, default=None, help="also time the fused prototype "
                    "on this many replicas at a time")
    ap.add_argument("--trainer-chunks", type=int, default=None, metavar="C",
                    help="run the trainer (lrsim) on chunks of C replicas (default: its own "
                    "choice, chunk = 'auto'; 0: the whole batch)")
    ap.add_argument("--adam", default="ops", choices=["ops", "compile"],
                    help="fused prototype's adam update: in-place ops or torch.compile")
    ap.add_argument("--json", default=None, help="append rows as JSON lines to this file")
    ap.add_argument("--render", default=None, metavar="JSONL",
                    help="print the markdown table of the rows in JSONL (no measuring)")
    args = ap.parse_args()
    if args.render:
        print(render([json.loads(line) for line in open(args.render) if line.strip()]))
        return
    torch.set_num_threads(1)
    peaks = [peak_flops()]
    print(f"torch {torch.__version__}, 1 thread, {platform.machine()} {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}; peak fp32 matmul {peaks[0] / 1e9:.1f} GFLOP/s; "
          f"clock time.thread_time; {args.rounds} rounds x {args.every} steps", flush=True)
    for opt in args.optimizers:
        for w in args.widths:
            for k in args.ks:
                if step_flops(w, k) > args.max_flops:
                    continue
                forced = args.trainer_chunks
                times, used = measure(w, k, opt, args.rule, args.variants, args.rounds,
                                      args.every, args.chunk, args.adam,
                                      "auto" if forced is None else (forced or None))
                peaks.append(peak_flops())
                peak = statistics.median(peaks)
                base = times["lrsim"]
                row = {"rule": args.rule, "optimizer": opt, "width": w, "K": k,
                       "lrsim_s": statistics.median(base),
                       "pct_peak": 100 * step_flops(w, k) / statistics.median(base) / peak,
                       "peak_gflops": peak / 1e9, "load": os.getloadavg()[0], "chunk": used}
                text = [f"{args.rule} {opt:<8} w={w:<4} K={k:<5} chunk={used} lrsim "
                        f"{row['lrsim_s']:.2e} s/step ({row['pct_peak']:.0f}% peak)"]
                for name, ts in times.items():
                    if name == "lrsim":
                        continue
                    ratios = sorted(t / b for t, b in zip(ts, base))
                    row[name] = {"s": statistics.median(ts), "ratio": statistics.median(ratios),
                                 "lo": ratios[0], "hi": ratios[-1],
                                 "pct_peak": 100 * step_flops(w, k) / statistics.median(ts)
                                 / peak}
                    text.append(f"{name} {row[name]['ratio']:.2f}x "
                                f"[{ratios[0]:.2f}-{ratios[-1]:.2f}]")
                if "vmap" in times and "floor" in times:  # the most a bmm step could lead by
                    ratios = sorted(v / f for v, f in zip(times["vmap"], times["floor"]))
                    row["vmap_floor"] = {"ratio": statistics.median(ratios), "lo": ratios[0],
                                         "hi": ratios[-1]}
                    text.append(f"vmap/floor {row['vmap_floor']['ratio']:.2f}x "
                                f"[{ratios[0]:.2f}-{ratios[-1]:.2f}]")
                print(" | ".join(text), flush=True)
                if args.json:
                    with open(args.json, "a") as fh:
                        fh.write(json.dumps(row) + "\n")


def render(rows: list[dict]) -> str:
    """Markdown table: per point lrsim's s/step and % of peak, and each variant's time as a
    multiple of lrsim's (median of the per-round ratios, [min-max])."""
    names = [n for n in ("loop", "vmap", "whole", "biotorch", "fused", "floor", "vmap_floor")
             if any(n in r for r in rows)]
    head = {"loop": "torch.nn loop / lrsim", "vmap": "vmap peer / lrsim",
            "whole": "whole-batch trainer / lrsim", "biotorch": "BioTorch FA loop / lrsim",
            "fused": "prototype / lrsim", "floor": "matmul floor / lrsim",
            "vmap_floor": "vmap peer / matmul floor"}
    chunks = any("chunk" in r for r in rows)  # rows before replica chunking have none
    out = ["| rule, optimizer | width | K | " + ("chunk | " if chunks else "")
           + "lrsim s/step | lrsim % of peak | " + " | ".join(head[n] for n in names) + " |",
           "| --- | ---: | ---: | " + ("---: | " if chunks else "") + "---: | ---: | "
           + " | ".join("---:" for _ in names) + " |"]
    for r in rows:
        cells = []
        for n in names:
            v = r.get(n)
            cells.append(f"{v['ratio']:.2f}x [{v['lo']:.2f}-{v['hi']:.2f}]" if v else "")
        chunk = (f"{r.get('chunk') or '-'} | " if chunks else "")
        out.append(f"| {r['rule']}, {r['optimizer']} | {r['width']} | {r['K']} | {chunk}"
                   f"{r['lrsim_s']:.2e} | {r['pct_peak']:.0f}% | " + " | ".join(cells) + " |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
