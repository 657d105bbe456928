"""Coverage-guided fuzzing (atheris / libFuzzer) of the readers of untrusted files, for a bounded time.

Targets:
  unpickler   pixelfolder.convert.nvlabs_pickle: loads_network_pickle, then every network extracted, detected and
              converted (what `pixelfolder convert X.pkl` does)
  checkpoint  pixelfolder.networks.open_file on the bytes written to a file, then every network it holds built
              (torch zips and legacy files with their pre-checks, records, official dicts, safetensors, pickles)

A finding is any exception other than PixelfolderError (pixelfolder.errors), an input slower than --slow seconds,
or an input whose process memory grows past --rss-mb (checked after each input; the address space is capped at
--memory-mb, so a huge allocation surfaces as an exception). Findings are grouped by exception type and the
innermost pixelfolder frame; the first input of each group is saved under --findings with a summary line in
findings.jsonl. Example (about 5 minutes per target, low priority):

    nice -n 10 python tools/fuzz_readers.py unpickler --seconds 300
    nice -n 10 python tools/fuzz_readers.py checkpoint --seconds 300
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import pickle
import resource
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import atheris  # noqa: E402

import torch  # noqa: E402

with atheris.instrument_imports(include=["pixelfolder"]):
    import pixelfolder.checkpoint  # noqa: E402,F401
    import pixelfolder.convert  # noqa: E402
    import pixelfolder.networks  # noqa: E402
    import pixelfolder.pickle_scan  # noqa: E402,F401
    import pixelfolder.torchfile  # noqa: E402,F401
    from pixelfolder.convert import nvlabs_pickle  # noqa: E402
    from pixelfolder.errors import PixelfolderError  # noqa: E402

for _name, _func in list(vars(pickle._Unpickler).items()):       # the pure-Python unpickler the NVlabs reader uses
    if callable(_func) and hasattr(_func, "__code__"):
        setattr(pickle._Unpickler, _name, atheris.instrument_func(_func))


# ------------------------------------------------------------------------------------------------------ targets
def unpickler_target(data: bytes) -> None:
    snapshot = nvlabs_pickle.loads_network_pickle(data)
    if not isinstance(snapshot, dict):
        return
    for which in ("g_ema", "g", "d"):
        if isinstance(snapshot.get(pixelfolder.convert.NVLABS_WHICH[which]), nvlabs_pickle.PersistentRecord):
            pixelfolder.convert.load_network_pickle("fuzz.pkl", which, snapshot)


class CheckpointTarget:
    """Write the bytes to one file and open it as `pixelfolder generate --network FILE` would."""

    def __init__(self):
        self.path = Path(tempfile.mkdtemp(prefix="fuzz-checkpoint-")) / "input.pt"

    def __call__(self, data: bytes) -> None:
        self.path.write_bytes(data)
        opened = pixelfolder.networks.open_file(self.path)
        for name in opened.names:
            opened.build(name)


# ------------------------------------------------------------------------------------------------------- seeds
def _program(body: bytes) -> bytes:
    return b"\x80\x02" + body + b"."


def _storage_blob(n: int) -> bytes:
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(torch.arange(float(n)).storage(), buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def unpickler_seeds() -> list[bytes]:
    """Small NVlabs-like pickles (a persistent Generator with a tensor, dtypes, scalars, OrderedDicts) and the
    smallest official fixture."""
    def g(module, name):
        return f"c{module}\n{name}\n".encode()

    def v(obj):
        return pickle.dumps(obj, protocol=2)[2:-1]

    def call(func, *args):
        return func + b"(" + b"".join(args) + b"tR"

    raw = _storage_blob(4)
    storage = call(g("torch.storage", "_load_from_bytes"), b"B" + len(raw).to_bytes(4, "little") + raw)
    tensor = call(g("torch._utils", "_rebuild_tensor_v2"), storage, v(0), v((2, 2)), v((2, 1)), v(False),
                  call(g("collections", "OrderedDict")))
    dtype = call(g("numpy", "dtype"), v("f8"), v(False), v(True)) + b"(" + v(3) + v("<") + b"NNN" + v(-1) + \
        v(-1) + v(0) + b"tb"
    scalar = call(g("numpy._core.multiarray", "scalar"), dtype, v(b"\x00" * 8))
    state = b"}(" + v("_parameters") + b"}(" + v("w") + tensor + b"u" + v("_buffers") + b"}" + v("_modules") + \
        b"}" + v("_init_kwargs") + b"}(" + v("z_dim") + v(4) + v("psi") + scalar + b"uu"
    meta = b"}(" + v("type") + v("class") + v("version") + v(6) + v("module_src") + v("class Generator:\n  pass\n") \
        + v("class_name") + v("Generator") + v("state") + state + b"u"
    record = call(g("torch_utils.persistence", "_reconstruct_persistent_obj"), meta)
    stub = call(g("torch.nn.modules.container", "ModuleList")) + b"}(" + v("_modules") + b"}ub"
    seeds = [_program(b"}(" + v("G_ema") + record + v("aug") + stub + b"u"), _program(tensor), _program(scalar)]
    fixture = ROOT / "tests" / "fixtures" / "sg2ada_d_tiny.pkl"
    if fixture.is_file():
        seeds.append(fixture.read_bytes())
    return seeds


def checkpoint_seeds() -> list[bytes]:
    """A small pixelfolder record (zip and legacy), an official-style state_dict, a safetensors record."""
    import pixelfolder as pf
    model = pf.create("stylegan2_d-tiny", resolution=8, channel_max=4)
    out = []
    for legacy in (False, True):
        buf = io.BytesIO()
        torch.save(pixelfolder.checkpoint.to_record(model), buf, _use_new_zipfile_serialization=not legacy)
        out.append(buf.getvalue())
    buf = io.BytesIO()
    torch.save({"conv1.weight": torch.zeros(2, 3, 1, 1), "meta": [1, 2.0, "x", None, (True,)]}, buf)
    out.append(buf.getvalue())
    path = Path(tempfile.mkdtemp(prefix="fuzz-seed-")) / "s.safetensors"
    pf.save(model, path)
    out.append(path.read_bytes())
    return out


# ------------------------------------------------------------------------------------------------------ harness
class Findings:
    """Groups non-PixelfolderError exceptions, slow inputs and memory growth; saves the first input of each."""

    def __init__(self, folder: Path, target: str, slow_s: float, rss_mb: int, seconds: float):
        self.folder, self.target, self.slow_s, self.rss_mb = folder, target, slow_s, rss_mb
        self.deadline = time.monotonic() + seconds
        self.start = time.monotonic()
        self.groups: dict = {}
        self.execs = 0
        self.last_report = 0.0
        folder.mkdir(parents=True, exist_ok=True)

    def record(self, kind: str, where: str, message: str, data: bytes) -> None:
        key = f"{kind} @ {where}"
        group = self.groups.setdefault(key, {"count": 0})
        group["count"] += 1
        if group["count"] == 1:
            name = f"{self.target}-{hashlib.sha1(key.encode()).hexdigest()[:10]}.bin"
            (self.folder / name).write_bytes(data)
            line = {"target": self.target, "kind": kind, "where": where, "message": message[:300], "input": name,
                    "bytes": len(data), "exec": self.execs}
            with open(self.folder / "findings.jsonl", "a") as f:
                f.write(json.dumps(line) + "\n")
            print(f"\nFINDING {key}: {message[:200]} -> {name}", file=sys.stderr, flush=True)

    def tick(self) -> None:
        now = time.monotonic()
        if now - self.last_report > 30:
            self.last_report = now
            print(f"[{self.target}] {now - self.start:.0f} s, {self.execs} execs, {len(self.groups)} finding groups",
                  file=sys.stderr, flush=True)
        if now > self.deadline:
            self.summary()
            os._exit(0)

    def summary(self) -> None:
        wall = time.monotonic() - self.start
        report = {"target": self.target, "seconds": round(wall, 1), "execs": self.execs,
                  "findings": {k: g["count"] for k, g in self.groups.items()}}
        with open(self.folder / "summary.jsonl", "a") as f:
            f.write(json.dumps(report) + "\n")
        print(f"\n[{self.target}] done: {json.dumps(report)}", file=sys.stderr, flush=True)


def _innermost(tb) -> str:
    frames = traceback.extract_tb(tb)
    ours = [f for f in frames if "pixelfolder" in f.filename] or frames
    f = ours[-1] if ours else None
    return f"{Path(f.filename).name}:{f.lineno} {f.name}" if f else "?"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_test_one_input(target, findings: Findings):
    def test_one_input(data: bytes) -> None:
        findings.execs += 1
        t0 = time.monotonic()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                target(data)
        except PixelfolderError as e:
            if "\n" in str(e):
                findings.record("multi-line error", _innermost(e.__traceback__), str(e), data)
        except (Exception, RecursionError, MemoryError) as e:  # noqa: BLE001  (every other exception is a finding)
            findings.record(type(e).__name__, _innermost(e.__traceback__), str(e).strip().split("\n")[0], data)
        elapsed = time.monotonic() - t0
        if elapsed > findings.slow_s:
            findings.record("slow", f"{elapsed:.1f} s", f"{len(data)} bytes took {elapsed:.1f} s", data)
        if _rss_mb() > findings.rss_mb:
            findings.record("memory", f"rss {_rss_mb():.0f} MB", f"peak RSS passed {findings.rss_mb} MB", data)
            findings.rss_mb = _rss_mb() + 512        # report growth again only past the new peak
        findings.tick()
    return test_one_input


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("target", choices=["unpickler", "checkpoint"])
    parser.add_argument("--seconds", type=float, default=300, help="fuzzing time (default 300)")
    parser.add_argument("--findings", default="fuzz-findings", help="folder for findings (default fuzz-findings)")
    parser.add_argument("--corpus", help="corpus folder (default: a fresh one seeded here)")
    parser.add_argument("--slow", type=float, default=2.0, help="an input slower than this is a finding (s)")
    parser.add_argument("--rss-mb", type=int, default=2500, help="peak RSS growth past this is a finding (MB)")
    parser.add_argument("--memory-mb", type=int, default=6144, help="RLIMIT_AS of the fuzzing process (MB)")
    parser.add_argument("--max-len", type=int, default=1 << 18, help="longest input (bytes)")
    args, libfuzzer_args = parser.parse_known_args()
    torch.set_num_threads(1)
    corpus = Path(args.corpus or tempfile.mkdtemp(prefix=f"fuzz-{args.target}-corpus-"))
    corpus.mkdir(parents=True, exist_ok=True)
    seeds = unpickler_seeds() if args.target == "unpickler" else checkpoint_seeds()
    for i, seed in enumerate(seeds):
        (corpus / f"seed-{i}").write_bytes(seed[: args.max_len])
    resource.setrlimit(resource.RLIMIT_AS, (args.memory_mb << 20, args.memory_mb << 20))
    target = unpickler_target if args.target == "unpickler" else CheckpointTarget()
    findings = Findings(Path(args.findings), args.target, args.slow, args.rss_mb, args.seconds)
    findings.rss_mb = max(findings.rss_mb, _rss_mb() + 1024)
    argv = [sys.argv[0], str(corpus), f"-max_len={args.max_len}", f"-max_total_time={int(args.seconds) + 60}",
            "-timeout=30", "-rss_limit_mb=0", *libfuzzer_args]
    atheris.Setup(argv, make_test_one_input(target, findings))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
