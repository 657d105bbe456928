"""Data safety through the CLI: one `train` per run directory, one file per snapshot, killed runs' temporaries and
half-written stats, full disks for every writing verb, `convert` onto its source or an existing file, and a
reference cache that notices images replaced in place. Every run has a memory cap and a time limit."""
import contextlib
import fcntl
import hashlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.adversarial.harness import (MEMORY_CAP_BYTES, SRC, _limits, assert_ok, assert_one_line_error,
                                       run_cli_capped)
from tests.helpers import make_folder

TRAIN = ("--model", "stylegan2", "--preset", "stylegan2-tiny", "--batch", "4", "--device", "cpu", "--workers", "0",
         "--threads", "1")        # one thread: OpenMP barriers crawl on a busy machine


def env(tmp):
    return {"PIXELFOLDER_CACHE": str(tmp / "cache"), "PIXELFOLDER_OFFLINE": "1"}


def digest(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def leftovers(folder) -> list[str]:
    """Hidden temporaries and empty files below `folder` (the lock file excepted)."""
    found = []
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if name != ".train.lock" and (name.startswith(".") or path.stat().st_size == 0):
                found.append(str(path.relative_to(folder)))
    return found


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_folder(tmp_path_factory.mktemp("data") / "imgs", n=8, size=32)


# ------------------------------------------------------------------------------------------------ snapshots

@pytest.fixture(scope="module")
def fractional_run(tmp_path_factory, data):
    """A run with --snap 0.004 (one snapshot per step of 4 images) to kimg 0.012."""
    tmp = tmp_path_factory.mktemp("fractional")
    result = run_cli_capped("train", "--data", data, "--outdir", tmp / "run", *TRAIN, "--kimg", "0.012", "--snap",
                            "0.004", env=env(tmp))
    assert_ok(result)
    return tmp / "run"


LABELS = ("000000", "000000.004", "000000.008", "000000.012")


def _metadata_steps(run):
    import pixelfolder
    return [pixelfolder.load(run / f"network-snapshot-{label}.pt").metadata["step"] for label in LABELS]


def _latest(run) -> str:
    from pixelfolder.networks import latest_snapshot
    return latest_snapshot(run).name


SNAPSHOT_CHECKS = {
    "network-names": lambda run: {f"network-snapshot-{label}.pt" for label in LABELS} <= set(os.listdir(run)),
    "grid-names": lambda run: {f"fakes{label}.png" for label in LABELS} <= set(os.listdir(run)),
    "latest-is-last": lambda run: _latest(run) == "network-snapshot-000000.012.pt",
    "one-step-each": lambda run: _metadata_steps(run) == [0, 1, 2, 3],
}


@pytest.mark.parametrize("check", SNAPSHOT_CHECKS)
def test_fractional_snap_intervals_never_overwrite_a_snapshot(fractional_run, check):
    assert SNAPSHOT_CHECKS[check](fractional_run), sorted(os.listdir(fractional_run))


# ------------------------------------------------------------------------------------------------ stale temporaries

RUN_TEMPORARIES = (".training-state.pt.abcd1234.tmp", ".fakes000000.004.png.zz99xx88.png",
                   ".network-snapshot-000000.008.pt.q1w2e3r4.tmp", ".stats.jsonl.u7y6t5r4.tmp", ".log.txt.k_3j4h5g.tmp")


@pytest.fixture(scope="module")
def cleaned_run(tmp_path_factory, fractional_run, data):
    run = tmp_path_factory.mktemp("stale") / "run"
    shutil.copytree(fractional_run, run)
    kept = {name: digest(run / name) for name in os.listdir(run) if not name.startswith(".")}
    for name in RUN_TEMPORARIES:
        (run / name).write_bytes(b"half")
    result = run_cli_capped("train", "--data", data, "--outdir", run, *TRAIN, "--kimg", "0.012", "--resume",
                            "auto", env=env(run.parent))
    return run, kept, result


@pytest.mark.parametrize("name", RUN_TEMPORARIES)
def test_a_killed_runs_temporaries_are_removed_at_the_next_start(cleaned_run, name):
    run, kept, result = cleaned_run
    assert_ok(result)
    assert not (run / name).exists()
    assert all((run / k).is_file() for k in kept)          # nothing of the run itself is lost
    assert all(digest(run / k) == v for k, v in kept.items() if k.endswith(".pt"))


PREPARE_TEMPORARIES = {".out.zip.abcd1234.incomplete": "file", ".out.zip.efgh5678.incomplete": "dir",
                       ".out.zip.log.ijkl9012.incomplete": "file"}


@pytest.mark.parametrize("name", PREPARE_TEMPORARIES)
def test_a_killed_prepares_temporaries_are_removed_but_not_a_live_ones(tmp_path, data, name):
    if PREPARE_TEMPORARIES[name] == "dir":
        (tmp_path / name).mkdir()
        (tmp_path / name / "data.mdb").write_bytes(b"\0" * 4096)
    else:
        (tmp_path / name).write_bytes(b"PK\3\4 half")
    live, other = tmp_path / ".out.zip.live5678.incomplete", tmp_path / ".other.zip.mnop3456.incomplete"
    live.write_bytes(b"being written")
    other.write_bytes(b"another destination's")
    with open(live, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)                     # a prepare still writing it
        result = run_cli_capped("prepare", data, "--out", tmp_path / "out.zip", "--size", "16", "--workers", "1",
                                env=env(tmp_path))
    assert_ok(result)
    assert not (tmp_path / name).exists() and live.exists() and other.exists()
    assert (tmp_path / "out.zip").is_file()


# ------------------------------------------------------------------------------------------------ half-written stats

def _truncate_last(path: Path) -> None:
    text = path.read_text()
    path.write_text(text + text.splitlines()[-1][:25])                 # a kill in the middle of a line


def _not_utf8(run: Path) -> None:
    """Bytes that are no UTF-8 in stats.jsonl and, cut inside a character, at the end of log.txt."""
    stats, log = run / "stats.jsonl", run / "log.txt"
    stats.write_bytes(stats.read_bytes() + b"\xff\xfe{\"step\": 9\n")
    log.write_bytes(log.read_bytes() + b"kimg \xe2\x82")


STATS_DAMAGE = {"half-written-last-line": lambda run: _truncate_last(run / "stats.jsonl"),
                "not-utf8-in-stats-and-log": _not_utf8}


@pytest.mark.parametrize("case", STATS_DAMAGE)
def test_a_damaged_stats_or_log_line_does_not_stop_a_resume(tmp_path, fractional_run, data, case):
    run = tmp_path / "run"
    shutil.copytree(fractional_run, run)
    good, log = (run / "stats.jsonl").read_text().splitlines(), (run / "log.txt").read_text().splitlines()
    STATS_DAMAGE[case](run)
    result = run_cli_capped("train", "--data", data, "--outdir", run, *TRAIN, "--kimg", "0.012", "--resume",
                            "auto", env=env(tmp_path))
    assert_ok(result)
    assert "warning:" in result.stderr and "skipped 1 unreadable line" in result.stderr
    assert (run / "stats.jsonl").read_text().splitlines() == good          # the good records are all kept
    after = (run / "log.txt").read_text(errors="strict").splitlines()
    assert after[:len(log)] == log and "nothing to do" in after[-1]


# ------------------------------------------------------------------------------------------------ the lock

def _popen_train(*argv, tmp):
    environ = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", **env(tmp)}
    return subprocess.Popen([sys.executable, "-m", "pixelfolder.cli.main", "train", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=environ,
                            preexec_fn=_limits(MEMORY_CAP_BYTES, None))


def _wait_for_line(proc, text: str, timeout: float = 60) -> None:
    deadline, seen = time.monotonic() + timeout, b""
    while text.encode() not in seen:
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, f"the holder never said {text!r}: {seen[-500:]!r}"
        if select.select([proc.stdout], [], [], left)[0]:
            seen += os.read(proc.stdout.fileno(), 4096)


@pytest.fixture(scope="module")
def holder(tmp_path_factory, data):
    """A `train` that holds its run directory (it trains for hours unless killed)."""
    tmp = tmp_path_factory.mktemp("locked")
    proc = _popen_train("--data", data, "--outdir", tmp / "run", *TRAIN, "--kimg", "1000", "--snap", "1000", tmp=tmp)
    try:
        _wait_for_line(proc, "snapshot at kimg")       # past the first snapshot: training-state.pt exists
        proc.send_signal(signal.SIGSTOP)                  # still holding the lock, but leaving the CPU to the tests
        yield tmp / "run", proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()


SECOND_RUNS = {"resume-auto": lambda run: ["--resume", "auto"],
               "resume-its-state-file": lambda run: ["--resume", run / "training-state.pt"]}


@pytest.mark.parametrize("case", SECOND_RUNS)
def test_a_second_train_on_a_busy_run_directory_is_refused(holder, data, case):
    run, proc = holder
    before = {name: digest(run / name) for name in os.listdir(run) if name.endswith(".pt")}
    result = run_cli_capped("train", "--data", data, "--outdir", run, *TRAIN, "--kimg", "0.004",
                            *SECOND_RUNS[case](run), env=env(run.parent))
    assert_one_line_error(result, "in use by another", f"pid {proc.pid}")
    assert proc.poll() is None
    assert {name: digest(run / name) for name in before} == before


def test_the_lock_dies_with_a_killed_holder(holder, data):
    run, proc = holder
    refused = run_cli_capped("train", "--data", data, "--outdir", run, *TRAIN, "--kimg", "0.004", "--resume", "auto",
                             env=env(run.parent))
    assert_one_line_error(refused, f"pid {proc.pid}")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    result = run_cli_capped("train", "--data", data, "--outdir", run, *TRAIN, "--kimg", "0.004", "--resume", "auto",
                            env=env(run.parent))
    assert_ok(result)


# ------------------------------------------------------------------------------------------------ full disks

@contextlib.contextmanager
def full_tmpfs(mount: Path):
    """`mount` as a 1 MiB tmpfs filled to the last byte, or None where mounting is not allowed (not root)."""
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        yield None
        return
    try:
        with contextlib.suppress(OSError), open(mount / "filler", "wb") as f:
            while True:
                f.write(b"\0" * 4096)
                f.flush()
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    import pixelfolder
    path = tmp_path_factory.mktemp("ckpt") / "g.pt"
    pixelfolder.save(pixelfolder.create("stylegan2-tiny"), path)
    return path


def _writing_verb(case, where: Path, data, checkpoint):
    """(argv, output folder) of a verb writing into `where`."""
    return {
        "generate": (["generate", "--network", "stylegan2-tiny", "--seeds", "0-7", "--outdir", where / "out",
                      "--device", "cpu"], where / "out"),
        "prepare-lmdb": (["prepare", data, "--out", where / "db", "--size", "16", "--workers", "1"], where),
        "prepare-zip": (["prepare", data, "--out", where / "out.zip", "--size", "32", "--workers", "1"], where),
        "convert": (["convert", checkpoint, where / "g.safetensors"], where),
        "train-start": (["train", "--data", data, "--outdir", where / "run", *TRAIN, "--kimg", "0.004"], where / "run"),
        "train-state": (["train", "--data", data, "--outdir", where / "run", *TRAIN, "--kimg", "0.004"], where / "run"),
    }[case]


FSIZE = {"generate": 200,               # RLIMIT_FSIZE bytes: below the first PNG,
         "prepare-lmdb": 4096,          # LMDB's two meta pages,
         "prepare-zip": 12_000,         # a zip of 8 uncompressed 32 px PNGs,
         "convert": 4096,               # a 1 MB checkpoint,
         "train-start": 0,              # the write probe,
         "train-state": 3 << 20}        # the 8 MB training state (the first 1 MB snapshot fits)
# tmpfs: a full 1 MiB tmpfs (root), else RLIMIT_FSIZE; fsize: RLIMIT_FSIZE always
DISK_CASES = [("tmpfs", "generate"), ("tmpfs", "prepare-lmdb"), ("fsize", "prepare-zip"), ("tmpfs", "convert"),
              ("tmpfs", "train-start"), ("fsize", "train-state")]


@pytest.mark.parametrize("how, case", DISK_CASES)
def test_a_full_disk_ends_in_one_line_and_leaves_nothing_partial(how, case, tmp_path, data, checkpoint):
    with full_tmpfs(tmp_path / "disk") if how == "tmpfs" else contextlib.nullcontext() as mount:
        where = mount or tmp_path / "out-area"
        where.mkdir(exist_ok=True)
        argv, out = _writing_verb(case, where, data, checkpoint)
        result = run_cli_capped(*argv, env=env(tmp_path), fsize=None if mount else FSIZE[case])
        assert_one_line_error(result, "no space left")
        assert not leftovers(out), leftovers(out)
        assert not (where / "db").exists() and not (where / "out.zip").exists()


# ------------------------------------------------------------------------------------------------ convert

def _same_path(src: Path, tmp: Path):
    return src


def _symlink(src: Path, tmp: Path):
    (tmp / "link.pt").symlink_to(src)
    return tmp / "link.pt"


def _hard_link(src: Path, tmp: Path):
    os.link(src, tmp / "hard.pt")
    return tmp / "hard.pt"


def _existing(src: Path, tmp: Path):
    shutil.copy(src, tmp / "other.pt")
    return tmp / "other.pt"


CONVERT_CASES = {            # name -> (DST maker, extra options, what the line says)
    "same-path": (_same_path, [], "the same file"),
    "symlink-to-src": (_symlink, ["--overwrite"], "the same file"),
    "hard-link-to-src": (_hard_link, ["--overwrite"], "the same file"),
    "existing-dst": (_existing, [], "--overwrite"),
    "latest-snapshot-of-run-dir": (None, ["--overwrite"], "the same file"),
}


@pytest.mark.parametrize("case", CONVERT_CASES)
def test_convert_never_replaces_its_source_or_an_existing_file(case, tmp_path, checkpoint):
    make, extra, expected = CONVERT_CASES[case]
    src = tmp_path / "src.pt"
    shutil.copy(checkpoint, src)
    if make is None:
        (tmp_path / "run").mkdir()
        src = tmp_path / "run" / "network-snapshot-000004.pt"
        shutil.copy(checkpoint, src)
        spec, dst = tmp_path / "run", src
    else:
        spec, dst = src, make(src, tmp_path)
    before, dst_before = digest(src), digest(dst)
    result = run_cli_capped("convert", spec, dst, *extra, env=env(tmp_path))
    assert_one_line_error(result, str(dst), expected)
    assert digest(src) == before and digest(dst) == dst_before


# ------------------------------------------------------------------------------------------------ metric cache

def _rewrite_in_place(folder: Path, seed: int) -> None:
    """New pixels in the same files (the folder's own mtime does not change)."""
    fresh = make_folder(folder.parent / f"fresh{seed}", n=8, size=32, seed=seed)
    for path in sorted(folder.rglob("*.png")):
        with open(path, "r+b") as f:
            f.truncate(0)
            f.write((fresh / f"img{int(path.stem[3:]):03d}.png").read_bytes())


def _replace_in_subfolder(folder: Path, seed: int) -> None:
    """A file renamed over another one in a subfolder (only the subfolder's mtime changes)."""
    fresh = make_folder(folder.parent / f"fresh{seed}", n=8, size=32, seed=seed)
    for path in sorted((folder / "sub").glob("*.png")):
        tmp = path.with_suffix(".new")
        shutil.copy(fresh / f"img{int(path.stem[3:]):03d}.png", tmp)
        os.replace(tmp, path)


@pytest.fixture(scope="module")
def fid_runs(tmp_path_factory):
    """FID of the same fakes against a real folder, recomputed after each change (one cache for all runs)."""
    tmp = tmp_path_factory.mktemp("fid")
    real = make_folder(tmp / "real", n=4, size=32, seed=1)
    sub = make_folder(real / "sub", n=8, size=32, seed=2)
    for i in range(4):
        (sub / f"img{i:03d}.png").unlink()                   # sub holds img004..img007
    fake = make_folder(tmp / "fake", n=8, size=32, seed=3)

    def fid() -> str:
        result = run_cli_capped("evaluate", "--real", real, "--fake", fake, "--metrics", "fid", "--outdir", tmp,
                                "--device", "cpu", env=env(tmp))
        assert_ok(result)
        return result.stdout.strip().splitlines()[-1]
    values = {"first": fid()}
    _rewrite_in_place(real, seed=4)
    values["rewritten-in-place"] = fid()
    _replace_in_subfolder(real, seed=5)
    values["replaced-in-a-subfolder"] = fid()
    return values


@pytest.mark.parametrize("change, previous", [("rewritten-in-place", "first"),
                                              ("replaced-in-a-subfolder", "rewritten-in-place")])
def test_replacing_real_images_invalidates_the_cached_statistics(fid_runs, change, previous):
    assert fid_runs[change].startswith("fid: ") and fid_runs[change] != fid_runs[previous], fid_runs
