"""`pixelfolder export` and pixelfolder.export: every generator architecture's tiny preset exported to ONNX with a
dynamic batch and run in onnxruntime at batch 1 and 3; TorchScript for the fixed-size models and an any-scale one;
the CLI end to end; the refusals (a likelihood model, a bad --format, an operator the exporter lacks)."""
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

import pixelfolder
from pixelfolder.errors import PixelfolderError
from pixelfolder.export import PARITY_REL, export, unsupported_op
from tests.helpers import run_cli

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")   # torch 2.13
GENERATORS = [a.tiny_presets[0] for a in pixelfolder.registry.architectures("generator")]
ANY_SCALE_SIZE = 24            # any-scale models are exported at a non-native size (their --size path)
PSI = 0.7


def reference(G, z, size=None):
    """What the PyTorch model itself gives (default inference path) for z."""
    with torch.no_grad():
        return G(z, truncation_psi=PSI, noise_mode="const", size=size)


def check_close(out, ref, what):
    err, tol = (out - ref).abs().max().item(), PARITY_REL * ref.abs().max().item()
    assert out.shape == ref.shape, f"{what}: shape {tuple(out.shape)} != {tuple(ref.shape)}"
    assert err <= tol, f"{what}: max error {err:.3g} > {tol:.3g}"
    return err


def z_batch(G, batch, seed=123):
    return torch.randn(batch, G.z_dim, generator=torch.Generator().manual_seed(seed))


def test_every_generator_architecture_is_covered():
    assert len(GENERATORS) >= 7 and {"pixelfolder-tiny", "stylegan2-tiny", "creps-tiny"} <= set(GENERATORS)


@pytest.mark.parametrize("name", GENERATORS)
def test_onnx_dynamic_batch_matches_onnxruntime(tmp_path, name):
    G = pixelfolder.create(name)
    size = None if G.native_size_only else ANY_SCALE_SIZE
    path = tmp_path / f"{name}.onnx"
    result = export(G, path, "onnx", dynamic_batch=True, truncation_psi=PSI, size=size)
    assert sorted(result.errors) == [1, 3] and not result.note
    meta = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["pixelfolder"])
    assert meta["arch"] == G.arch and meta["truncation_psi"] == PSI and meta["batch"] == "dynamic"
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for batch in (1, 3):            # our own run of the file, independent of export()'s check
        z = z_batch(G, batch)
        out = torch.from_numpy(session.run(None, {"z": z.numpy()})[0])
        ref = reference(G, z, size)
        assert ref.shape[-1] == (size or G.resolution)
        err = check_close(out, ref, f"{name} batch {batch}")
        print(f"{name} onnx batch {batch}: max error {err:.2e} (max|out| {ref.abs().max().item():.3g})")
    # the model is left as it was: default modconv form, no export-only switches, gradients as before
    assert all(p.requires_grad for p in G.parameters())
    assert not any("batched_head" in vars(m) or "impl" in vars(m) for m in G.modules())


@pytest.mark.parametrize("name", ["pixelfolder-tiny", "stylegan2-tiny"])    # any-scale: test_cli_end_to_end
def test_torchscript_reloads_and_matches(tmp_path, name):
    G = pixelfolder.create(name)
    path = tmp_path / f"{name}.pt"
    result = export(G, path, dynamic_batch=True, truncation_psi=PSI)      # format from the suffix
    assert result.format == "torchscript" and sorted(result.errors) == [1, 3]
    files = {"pixelfolder.json": ""}
    loaded = torch.jit.load(str(path), _extra_files=files)
    assert json.loads(files["pixelfolder.json"])["arch"] == G.arch
    for batch in (1, 3):
        z = z_batch(G, batch)
        with torch.no_grad():
            check_close(loaded(z), reference(G, z), f"{name} torchscript batch {batch}")


def test_fixed_batch_onnx_and_the_psi_is_baked_in(tmp_path):
    G = pixelfolder.create("stylegan2-tiny")
    path = tmp_path / "g.onnx"
    result = export(G, path, batch=2, truncation_psi=PSI)
    assert list(result.errors) == [2]
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].shape == [2, G.z_dim]
    z = z_batch(G, 2)
    out = torch.from_numpy(session.run(None, {"z": z.numpy()})[0])
    check_close(out, reference(G, z), "fixed batch 2")
    with torch.no_grad():
        untruncated = G(z, truncation_psi=1.0, noise_mode="const")
    assert (out - untruncated).abs().max() > 100 * PARITY_REL * untruncated.abs().max()


def test_cli_end_to_end(tmp_path, capsys):
    out_path = tmp_path / "sub" / "cips.pt"
    code, out, err = run_cli(capsys, "export", "--network", "cips_skip-tiny", "--format", "torchscript",
                             "--output", out_path, "--dynamic-batch", "--truncation-psi", PSI, "--size", 40)
    assert code == 0, err
    assert "batch 1: max error" in out and "batch 3: max error" in out and "40x40" in out
    G = pixelfolder.load("cips_skip-tiny")     # the same random init the CLI opened
    z = z_batch(G, 3)
    with torch.no_grad():
        check_close(torch.jit.load(str(out_path))(z), reference(G, z, 40), "CLI export")
    assert [p.name for p in out_path.parent.iterdir()] == ["cips.pt"]      # no temporary file left behind


def test_refuses_a_likelihood_model(tmp_path, capsys):
    code, _out, err = run_cli(capsys, "export", "--network", "pixelpyramids-tiny", "--output", tmp_path / "pp.onnx")
    assert code == 2 and "likelihood model" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(PixelfolderError, match="likelihood model"):
        export(pixelfolder.create("pixelpyramids-tiny"), tmp_path / "pp.pt")
    assert not any(tmp_path.iterdir())


def test_cli_refuses_a_bad_format(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:       # argparse's own one-line refusal
        run_cli(capsys, "export", "--network", "pixelfolder-tiny", "--output", tmp_path / "g.onnx", "--format", "keras")
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "invalid choice: 'keras'" in err and len(err.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv, message", [
    (["--output", "g.h5"], "cannot tell the format"),
    (["--size", "48"], "renders only its native"),
    (["--opset", "13"], "below 18"),
    (["--format", "torchscript", "--opset", "18"], "--opset is for --format onnx"),
])
def test_cli_refusals(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    code, _out, err = run_cli(capsys, "export", "--network", "pixelfolder-tiny", "--output", "g.onnx", *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not any(tmp_path.iterdir())


class CumMax(torch.nn.Module):
    """A stand-in network using an operator torch.onnx has no translation for (aten.cummax)."""

    def forward(self, z):
        return torch.cummax(z, dim=1)[0].view(z.shape[0], 1, 8, 8).expand(-1, 3, -1, -1)


def test_unsupported_operator_is_named(tmp_path, monkeypatch):
    import pixelfolder.export as ex
    G = pixelfolder.create("pixelfolder-tiny")
    monkeypatch.setattr(ex, "_wrapper", lambda G, psi, size: CumMax())
    with pytest.raises(PixelfolderError, match=r"does not support the operator aten\.cummax") as info:
        export(G, tmp_path / "g.onnx", dynamic_batch=True)
    assert "\n" not in str(info.value)
    assert not any(tmp_path.iterdir())
    assert unsupported_op(ValueError("nothing here")) is None


def test_without_onnxruntime_the_check_is_skipped_with_a_note(tmp_path, monkeypatch):
    import pixelfolder.export as ex
    monkeypatch.setattr(ex, "_export_onnx", lambda G, module, z, tmp, *a: open(tmp, "wb").close())
    monkeypatch.setitem(sys.modules, "onnxruntime", None)       # import onnxruntime -> ImportError
    result = export(pixelfolder.create("pixelfolder-tiny"), tmp_path / "g.onnx")
    assert "onnxruntime is not installed" in result.note and not result.errors
    assert "skipped" in result.summary() and (tmp_path / "g.onnx").exists()


def test_a_failed_parity_check_writes_nothing(tmp_path, monkeypatch):
    import pixelfolder.export as ex
    real = ex._run_torchscript
    monkeypatch.setattr(ex, "_run_torchscript", lambda path, device: (lambda z: real(path, device)(z) + 1.0))
    with pytest.raises(PixelfolderError, match="differs from the model at batch 1"):
        export(pixelfolder.create("stylegan2-tiny"), tmp_path / "g.pt")
    assert not any(tmp_path.iterdir())


def test_creps_batched_head_equals_the_per_sample_head():
    G = pixelfolder.create("creps-tiny")
    z = z_batch(G, 3)
    with torch.no_grad():
        for size in (None, 27):
            loop = G(z, size=size)
            G.synthesis.batched_head = True
            try:
                batched = G(z, size=size)
            finally:
                del G.synthesis.batched_head
            np.testing.assert_allclose(batched.numpy(), loop.numpy(), rtol=0, atol=1e-6 * loop.abs().max().item())
