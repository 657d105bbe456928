"""NVlabs network pickles are read as data: exact state_dicts from the official snapshots, nothing executed."""
import builtins
import dataclasses
import io
import os
import pickle
import warnings

import pytest
import torch

from pixelfolder.convert.nvlabs_pickle import (detect_pickle_arch, extract_network, loads_network_pickle,
                                               looks_like_network_pickle, read_network_pickle)
from pixelfolder.errors import ConversionError
from tests.conftest import FIXTURES, load_fixture

ARCHS = ["inrgan", "creps"]


@pytest.fixture(scope="module", params=ARCHS)
def snapshot(request):
    arch = request.param
    return arch, read_network_pickle(FIXTURES / f"{arch}_snapshot_tiny.pkl"), load_fixture(
        f"{arch}_snapshot_tiny_expected.pt")


def test_snapshot_keys_and_plain_kwargs(snapshot):
    _, snap, fx = snapshot
    assert list(snap) == fx["snapshot_keys"]
    assert snap["training_set_kwargs"] == fx["training_set_kwargs"]


def test_g_ema_state_dict_is_bit_exact(snapshot):
    arch, snap, fx = snapshot
    rec = extract_network(snap, "G_ema")
    want = fx["G_ema_state_dict"]
    assert list(rec.state_dict) == list(want)
    for key, ref in want.items():
        got = rec.state_dict[key]
        assert got.dtype == ref.dtype and got.shape == ref.shape, key
        assert torch.equal(got, ref), key
        assert not got.requires_grad
    assert rec.class_name == fx["G_ema_class"] == "Generator"
    assert rec.init_kwargs == fx["G_ema_init_kwargs"]
    assert rec.module_src_sha256 == fx["module_src_sha256"]
    assert rec.source == fx["module_src_files"]["Generator"]
    assert detect_pickle_arch(rec) == arch


def test_init_kwargs_are_plain_dicts(snapshot):
    _, snap, _ = snapshot

    def check(v):
        if isinstance(v, dict):
            assert type(v) is dict
            for x in v.values():
                check(x)
    check(extract_network(snap).init_kwargs)


def test_training_copy_g(snapshot):
    _, snap, fx = snapshot
    rec = extract_network(snap, "G")
    assert rec.init_kwargs == fx["G_init_kwargs"]
    assert list(rec.state_dict) == list(fx["G_state_dict_sums"])
    for key, ref in fx["G_state_dict_sums"].items():
        got = rec.state_dict[key].double().sum().item()
        assert abs(got - ref) <= 1e-9 * max(1.0, abs(ref)), key


def test_discriminator_shapes(snapshot):
    _, snap, fx = snapshot
    rec = extract_network(snap, "D")
    assert rec.class_name == fx["D_class"]
    assert rec.init_kwargs == fx["D_init_kwargs"]
    assert rec.module_src_sha256 == fx["D_module_src_sha256"]
    assert {k: list(v.shape) for k, v in rec.state_dict.items()} == fx["D_state_dict_shapes"]
    assert list(rec.state_dict) == list(fx["D_state_dict_shapes"])
    assert detect_pickle_arch(rec) == "stylegan2_d"


def test_creps_non_persistent_modules_are_stubs():
    fx = load_fixture("creps_snapshot_tiny_expected.pt")
    rec = extract_network(FIXTURES / "creps_snapshot_tiny.pkl")
    assert sorted(rec.non_persistent) == sorted(fx["non_persistent_modules_in_G_ema"])
    assert fx["augment_pipe"]["class_name"] == read_network_pickle(FIXTURES / "creps_snapshot_tiny.pkl")[
        "augment_pipe"].class_name


def test_inrgan_variants_from_cfg():
    rec = extract_network(FIXTURES / "inrgan_snapshot_tiny.pkl")
    cfg = rec.init_kwargs["cfg"]
    bil = {**cfg, "upsampling_mode": "bilinear", "fmm": {**cfg["fmm"], "instance_norm": True}}
    assert detect_pickle_arch(dataclasses.replace(rec, init_kwargs={**rec.init_kwargs, "cfg": bil})) == "inrgan_bil"
    odd = {**cfg, "upsampling_mode": "bilinear"}
    with pytest.raises(ConversionError, match="neither inrgan"):
        detect_pickle_arch(dataclasses.replace(rec, init_kwargs={**rec.init_kwargs, "cfg": odd}))


def test_module_src_is_never_compiled(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("exec/compile/eval called while reading a network pickle")
    for name in ("exec", "eval", "compile"):
        monkeypatch.setattr(builtins, name, refuse)
    for arch in ARCHS:
        rec = extract_network(FIXTURES / f"{arch}_snapshot_tiny.pkl")
        assert rec.state_dict


def test_missing_network_lists_what_is_there():
    snap = read_network_pickle(FIXTURES / "inrgan_snapshot_tiny.pkl")
    del snap["G_ema"]
    with pytest.raises(ConversionError, match=r"no 'G_ema' network; it has: G, D"):
        extract_network(snap)
    with pytest.raises(ConversionError, match="which must be one of"):
        extract_network(snap, "g_ema")


def test_truncated_pickle_is_a_one_line_error(tmp_path):
    data = (FIXTURES / "creps_snapshot_tiny.pkl").read_bytes()
    cut = tmp_path / "cut.pkl"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConversionError, match="truncated or corrupt") as e:
        read_network_pickle(cut)
    assert "\n" not in str(e.value)
    assert looks_like_network_pickle(FIXTURES / "creps_snapshot_tiny.pkl")
    assert not looks_like_network_pickle(FIXTURES / "stylegan2_64.pt")


# -------------------------------------------------------------------------------------- crafted pickles
def glob(module: str, name: str) -> bytes:
    return f"c{module}\n{name}\n".encode()


def value(obj) -> bytes:
    """Opcodes that push a plain object (no PROTO/STOP)."""
    return pickle.dumps(obj, protocol=3)[2:-1]


def call(func: bytes, *args: bytes) -> bytes:
    return func + b"(" + b"".join(args) + b"tR"


def dict_of(**items: bytes) -> bytes:
    return b"}(" + b"".join(value(k) + v for k, v in items.items()) + b"u"


def program(body: bytes) -> bytes:
    return b"\x80\x03" + body + b"."


def shell_touch(path) -> bytes:
    return value(f"touch '{path}'")


def persistent(state: bytes, class_name: str = "Generator", src: str = "class Generator:\n    pass\n") -> bytes:
    meta = dict_of(type=value("class"), version=value(6), module_src=value(src), class_name=value(class_name),
                   state=state)
    return call(glob("torch_utils.persistence", "_reconstruct_persistent_obj"), meta)


def test_payload_is_live_with_plain_pickle(tmp_path):
    """Control: the crafted payload really runs under a plain pickle.loads (so the refusals below matter)."""
    marker = tmp_path / "ran"
    pickle.loads(program(call(glob("os", "system"), shell_touch(marker))))
    assert marker.exists()


@pytest.mark.parametrize("module,name", [("os", "system"), ("posix", "system"), ("builtins", "eval"),
                                         ("builtins", "exec"), ("subprocess", "Popen"), ("torch", "load"),
                                         ("torch.serialization", "load"), ("pickle", "loads")])
def test_foreign_globals_are_refused_before_running(tmp_path, module, name):
    marker = tmp_path / "ran"
    arg = shell_touch(marker) if name in ("system", "Popen") else value(f"open('{marker}', 'w')")
    with pytest.raises(ConversionError, match=rf"refusing to unpickle {module}\.{name}: not a known NVlabs"):
        loads_network_pickle(program(call(glob(module, name), arg)))
    assert not marker.exists()


def test_payload_smuggled_into_a_persistent_record(tmp_path):
    marker = tmp_path / "ran"
    evil = call(glob("posix", "system"), shell_touch(marker))
    state = dict_of(_parameters=dict_of(weight=evil), _buffers=b"}", _modules=b"}")
    with pytest.raises(ConversionError, match=r"refusing to unpickle posix\.system"):
        loads_network_pickle(program(dict_of(G_ema=persistent(state))))
    assert not marker.exists()


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch '{self.marker}'",)


def test_storage_bytes_are_loaded_weights_only(tmp_path):
    """A storage payload that the real torch.storage._load_from_bytes (weights_only=False) would execute."""
    buf = io.BytesIO()
    torch.save(_Evil(tmp_path / "control"), buf, _use_new_zipfile_serialization=False)
    torch.storage._load_from_bytes(buf.getvalue())   # control: the real function runs it
    assert (tmp_path / "control").exists()
    buf = io.BytesIO()
    torch.save(_Evil(tmp_path / "ran"), buf, _use_new_zipfile_serialization=False)
    data = program(call(glob("torch.storage", "_load_from_bytes"), b"B" + len(buf.getvalue()).to_bytes(4, "little")
                        + buf.getvalue()))
    with pytest.raises(ConversionError, match="unreadable tensor storage"):
        loads_network_pickle(data)
    assert not (tmp_path / "ran").exists()


def _storage_bytes(n: int) -> bytes:
    """A pickled storage as NVlabs pickles hold it: the legacy torch.save of a TypedStorage, as BINBYTES."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # TypedStorage is deprecated, but it is what the pickles contain
        torch.save(torch.zeros(n).storage(), buf, _use_new_zipfile_serialization=False)
    raw = buf.getvalue()
    return b"B" + len(raw).to_bytes(4, "little") + raw


def test_allowed_callables_reject_hostile_arguments():
    storage = call(glob("torch.storage", "_load_from_bytes"), _storage_bytes(4))
    rebuild = glob("torch._utils", "_rebuild_tensor_v2")
    ok = call(rebuild, storage, value(0), value((2, 2)), value((2, 1)), value(False), b"}")
    assert torch.equal(loads_network_pickle(program(ok)), torch.zeros(2, 2))
    huge = call(rebuild, storage, value(0), value((1 << 40,)), value((1,)), value(False), b"}")
    with pytest.raises(ConversionError, match="overruns its storage"):
        loads_network_pickle(program(huge))
    hooked = call(rebuild, storage, value(0), value((4,)), value((1,)), value(False), dict_of(h=value(1)))
    with pytest.raises(ConversionError, match="hooks"):
        loads_network_pickle(program(hooked))
    obj_dtype = call(glob("numpy", "dtype"), value("O"), value(False), value(True))
    with pytest.raises(ConversionError, match="refusing numpy scalar"):
        loads_network_pickle(program(call(glob("numpy._core.multiarray", "scalar"), obj_dtype, value(b"x" * 8))))
    with pytest.raises(ConversionError, match="not bytes"):
        loads_network_pickle(program(call(glob("torch.storage", "_load_from_bytes"), value("abc"))))
    with pytest.raises(ConversionError, match="persistent id"):
        loads_network_pickle(program(value("x") + b"Q"))


def test_unknown_generator_class_names_class_and_source():
    weight = call(glob("torch._utils", "_rebuild_tensor_v2"), call(glob("torch.storage", "_load_from_bytes"),
                  _storage_bytes(4)), value(0), value((4,)), value((1,)), value(False), b"}")
    state = dict_of(_parameters=dict_of(w=weight), _buffers=b"}", _modules=b"}", _init_kwargs=b"}")
    src = "class Generator:\n    pass\n\nclass FancyBlock:\n    pass\n"
    snap = loads_network_pickle(program(dict_of(G_ema=persistent(state, src=src))))
    rec = extract_network(snap)
    assert list(rec.state_dict) == ["w"]
    with pytest.raises(ConversionError, match=r"unknown network class 'Generator' \(module_src sha256 \w{12}, "
                                              r"defining Generator, FancyBlock\)"):
        detect_pickle_arch(rec)
