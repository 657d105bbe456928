"""NVlabs network pickles are read as data: exact state_dicts from the official snapshots, nothing executed."""
import builtins
import dataclasses
import io
import os
import pickle
import struct
import time
import warnings

import numpy as np
import pytest
import torch

from pixelfolder.convert import load_network_pickle
from pixelfolder.convert.nvlabs_pickle import (detect_pickle_arch, extract_network, loads_network_pickle,
                                               looks_like_network_pickle, read_network_pickle)
from pixelfolder.errors import ConversionError
from tests.helpers import FIXTURES, call, get, glob, load_fixture, program, put, value

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


def dict_of(**items: bytes) -> bytes:
    return b"}(" + b"".join(value(k) + v for k, v in items.items()) + b"u"




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
    with pytest.raises(ConversionError, match="refusing numpy dtype .O.: only plain number types"):
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


# ------------------------------------------------------------------------ review: crafted pickles that must not hurt
def shared_tree(levels: int, leaf: bytes, node: bytes = b"l", memo: int = 100) -> bytes:
    """x = leaf; x = [x, x] (node b'l') or (x, x) (node b't') `levels` times: 2**levels values via memo references."""
    body = leaf + put(memo) + b"0"     # POP: only the memo keeps each level
    for i in range(levels):
        body += b"(" + get(memo + i) + get(memo + i) + node + put(memo + i + 1) + b"0"
    return body + get(memo + levels)


def dtype(spec: str, state: bytes | None = None) -> bytes:
    d = call(glob("numpy", "dtype"), value(spec), value(False), value(True))
    return d if state is None else d + state + b"b"     # BUILD: dtype.__setstate__(state)


def scalar(dtype_ops: bytes, raw: bytes) -> bytes:
    return call(glob("numpy._core.multiarray", "scalar"), dtype_ops, value(raw))


def tensor(size: tuple | bytes, stride: tuple, n: int = 4) -> bytes:
    """_rebuild_tensor_v2 of an n-element float storage; `size` as a tuple or as the opcodes that push it."""
    storage = call(glob("torch.storage", "_load_from_bytes"), _storage_bytes(n))
    size = size if isinstance(size, bytes) else value(size)
    return call(glob("torch._utils", "_rebuild_tensor_v2"), storage, value(0), size, value(stride), value(False), b"}")


def module_state(**extra: bytes) -> bytes:
    return dict_of(**{"_parameters": b"}", "_buffers": b"}", "_modules": b"}", "_init_kwargs": b"}", **extra})


def quick_refusal(data: bytes, match: str, *, then=lambda obj: obj):
    """A one-line ConversionError, in well under a second."""
    t0 = time.perf_counter()
    with pytest.raises(ConversionError, match=match) as e:
        then(loads_network_pickle(program(data)))
    assert time.perf_counter() - t0 < 1.0   # ~0.2 s at worst (the size limits); unguarded: hours
    assert "\n" not in str(e.value)


def test_numpy_scalars_follow_the_pickled_byte_order():
    big_endian = value(3) + value(">") + b"NNN" + value(-1) + value(-1) + value(0)
    assert loads_network_pickle(program(scalar(dtype("f8", b"(" + big_endian + b"t"), struct.pack(">d", 1.5)))) == 1.5
    got = loads_network_pickle(program(scalar(dtype("i4"), struct.pack("<i", -7))))
    assert got == -7 and got.dtype == np.dtype("<i4")
    assert not isinstance(loads_network_pickle(program(dtype("f8"))), np.dtype)   # an inert stand-in, not a dtype


def test_numpy_dtype_cannot_become_a_sub_array_by_build():
    """BUILD could turn a real 'i8' dtype into an (10**10,) sub-array, and frombuffer(8 bytes) into a huge view."""
    sub_array = b"(" + dtype("i8") + b"(" + value(10 ** 10) + b"tt"
    state = b"(" + value(3) + value("<") + sub_array + b"NN" + value(-1) + value(-1) + value(0) + b"t"
    quick_refusal(scalar(dtype("i8", state), b"\x01" * 8), "refusing numpy dtype state")
    for spec in ("O", "V8", "S8", "U2", "i8,i8", "(2,)i8", "M8[s]", "f8 "):
        quick_refusal(scalar(dtype(spec), b"\x01" * 8), "refusing numpy dtype")
    aligned = call(glob("numpy", "dtype"), value("f8"), value(True), value(True))
    quick_refusal(scalar(aligned, b"\x01" * 8), "refusing numpy dtype")


def test_shared_references_do_not_blow_up():
    """Memo references make a few hundred bytes describe 2**25 to 2**40 values; each is refused in well under 1 s."""
    quick_refusal(dict_of(G_ema=persistent(module_state(_init_kwargs=dict_of(a=shared_tree(25, b"]"))))),
                  "_init_kwargs too large", then=extract_network)
    modules = persistent(module_state(), class_name="Leaf") + put(100) + b"0"
    for i in range(40):
        kids = dict_of(a=get(100 + i), b=get(100 + i))
        modules += persistent(module_state(_modules=kids, x=value(1)), class_name="Node") + put(101 + i) + b"0"
    quick_refusal(dict_of(G_ema=modules + get(140)), "module tree too large", then=extract_network)
    quick_refusal(b"}" + shared_tree(40, b")", b"t") + value(1) + b"s", "dict key or set item of more than")
    quick_refusal(tensor(size=shared_tree(40, b"]"), stride=(1,)), r"bad tensor size \(a list\)")


def test_cycles_are_refused():
    me = persistent(module_state(_modules=b"}" + put(100)), class_name="Loop") + put(101)
    loop = dict_of(G_ema=me + b"0" + get(100) + value("me") + get(101) + b"s0" + get(101))
    quick_refusal(loop, "too deep or cyclic", then=extract_network)
    itself = b"]" + put(100) + get(100) + b"a"
    quick_refusal(dict_of(G_ema=persistent(module_state(_init_kwargs=dict_of(a=itself)))),
                  "nested too deeply or cyclic", then=extract_network)


@pytest.mark.parametrize("build", [b"N" + dict_of(class_name=b"]"),                  # slot state: unhashable name
                                   dict_of(module_src_sha256=value("0" * 64))])    # dict state
def test_persistent_objects_refuse_build(build):
    quick_refusal(dict_of(G_ema=persistent(module_state()) + b"(" + build + b"tb"), "BUILD on a persistent object")


@pytest.mark.parametrize("state,match", [
    (module_state(_parameters=b"}" + value(("w",)) + tensor((4,), (1,)) + b"s"), "holds a bad name"),
    (module_state(_parameters=dict_of(w=value([1.0]))), "w is not a tensor"),
    (module_state(_non_persistent_buffers_set=value([1])), "is not a set of names"),
    (module_state(_modules=dict_of(m=value("x"))), "module m. is a str"),
    (module_state(_init_kwargs=dict_of(w=tensor((4,), (1,)))), "a Tensor among plain settings"),
    (module_state(_init_kwargs=b"}" + value(1) + value(2) + b"s"), "non-string keys"),
])
def test_walk_checks_the_types_it_reads(state, match):
    quick_refusal(dict_of(G_ema=persistent(state)), match, then=extract_network)


def test_stride_zero_views_cannot_be_huge():
    assert torch.equal(loads_network_pickle(program(tensor((8, 4), (0, 1)))), torch.zeros(8, 4))
    quick_refusal(tensor((1 << 40,), (0,)), "far more elements than its storage")
    quick_refusal(tensor((1 << 20, 1 << 20), (0, 0)), "far more elements than its storage")


def _edited_snapshot(name: str, **kwargs):
    snap = read_network_pickle(FIXTURES / name)
    snap["G_ema"].state["_init_kwargs"] = {**snap["G_ema"].state["_init_kwargs"], **kwargs}
    return snap


@pytest.mark.parametrize("name,kwargs,match", [
    ("inrgan_snapshot_tiny.pkl", {"cfg": "nearest"}, "malformed network pickle .*AttributeError"),
    ("sg2ada_tiny.pkl", {"img_channels": "three"}, "malformed network pickle .*ValueError"),
    ("sg2ada_tiny.pkl", {"c_dim": [1]}, "malformed network pickle .*TypeError"),
    ("sg2ada_tiny.pkl", {"c_dim": 10}, r"^conditional generators \(c_dim=10\) are not supported yet; supported: "
                                        r"unconditional StyleGAN2 generators \(c_dim=0\)$"),  # passes as is
])
def test_odd_init_kwargs_are_one_line_conversion_errors(name, kwargs, match):
    with pytest.raises(ConversionError, match=match) as e:
        load_network_pickle(FIXTURES / name, "g_ema", _edited_snapshot(name, **kwargs))
    assert "\n" not in str(e.value)


# ------------------------------------------------------------------------------- unsupported classes, by name
def module_tree(keys, init_kwargs: bytes = b"}", class_name: str = "Generator") -> bytes:
    """A persistent module holding 4-element parameters at the dotted `keys` (submodules persistent too)."""
    tree: dict = {}
    for key in keys:
        *path, leaf = key.split(".")
        node = tree
        for part in path:
            node = node.setdefault(part, {})
        node[leaf] = None

    def build(node: dict, kwargs: bytes, name: str) -> bytes:
        params = {k: tensor((4,), (1,)) for k, v in node.items() if v is None}
        children = {k: build(v, b"}", k) for k, v in node.items() if v is not None}
        state = dict_of(_parameters=dict_of(**params), _buffers=b"}", _modules=dict_of(**children),
                        _init_kwargs=kwargs)
        return persistent(state, class_name=name, src=f"class {name}:\n    pass\n")
    return build(tree, init_kwargs, class_name)


def test_stylegan3_pickle_is_named_with_what_is_supported(tmp_path, capsys):
    from pixelfolder.cli.main import main
    keys = ["mapping.fc0.weight", "synthesis.input.freqs", "synthesis.L0_36_512.weight", "synthesis.L1_36_512.weight"]
    path = tmp_path / "stylegan3-t.pkl"
    path.write_bytes(program(dict_of(G_ema=module_tree(keys))))
    assert main(["generate", "--network", str(path), "--outdir", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "StyleGAN3 generator" in err and "not supported yet" in err and "supported: INR-GAN" in err


def test_conditional_stylegan2_pickle_is_refused_with_what_is_supported(tmp_path, capsys):
    from pixelfolder.cli.main import main
    keys = ["mapping.fc0.weight", "mapping.embed.weight", "synthesis.b4.const", "synthesis.b4.conv1.affine.weight"]
    path = tmp_path / "cifar10.pkl"
    path.write_bytes(program(dict_of(G_ema=module_tree(keys, dict_of(c_dim=value(10), z_dim=value(4))))))
    assert main(["convert", str(path), str(tmp_path / "out.pt")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert "conditional generators (c_dim=10) are not supported yet" in err and "supported: unconditional" in err
    assert not (tmp_path / "out.pt").exists()
