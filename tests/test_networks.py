"""pixelfolder.load: URLs and the cache, the zoo, run directories, safetensors and the formats it refuses."""
import hashlib
import pickle
import socket
import zipfile

import pytest
import torch

import pixelfolder
from pixelfolder import networks, zoo
from pixelfolder.cli.main import main
from pixelfolder.errors import PixelfolderError
from tests.helpers import FIXTURES, serve_directory


@pytest.fixture
def server(tmp_path):
    """(served folder, base URL, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_directory(root) as (url, log):
        yield root, url, log


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELFOLDER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def tiny(tmp_path):
    torch.manual_seed(1)
    G = pixelfolder.create("stylegan2-tiny").eval()
    return G


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_url_is_downloaded_once_into_the_cache(server, tiny, cache):
    www, url, log = server
    pixelfolder.save(tiny, www / "g.pt")
    first = pixelfolder.load(f"{url}/g.pt")
    second = pixelfolder.load(f"{url}/g.pt")
    assert same_weights(first, tiny) and same_weights(second, tiny)
    assert log == ["/g.pt"]                                    # the second load read the cache
    cached = networks.cache_path(f"{url}/g.pt")
    assert cached.is_file() and cached.is_relative_to(cache / "networks")
    assert not [p for p in cached.parent.iterdir() if p.name.startswith(".")]     # no temporaries left


def test_equal_file_names_of_two_urls_do_not_collide(server, tiny):
    _, url, _ = server
    a, b = networks.cache_path(f"{url}/a/ffhq.pkl"), networks.cache_path(f"{url}/b/ffhq.pkl")
    assert a != b and a.name == b.name == "ffhq.pkl"


def test_sha256_is_checked_and_a_bad_file_is_not_cached(server, tiny):
    www, url, log = server
    pixelfolder.save(tiny, www / "g.pt")
    good = hashlib.sha256((www / "g.pt").read_bytes()).hexdigest()
    with pytest.raises(PixelfolderError, match="has sha256 .*nothing was cached"):
        pixelfolder.load(f"{url}/g.pt#sha256={'0' * 64}")
    assert not networks.cache_path(f"{url}/g.pt").exists()
    assert same_weights(pixelfolder.load(f"{url}/g.pt#sha256={good}"), tiny)
    with pytest.raises(PixelfolderError, match="delete it to download again"):      # the cached copy is checked too
        pixelfolder.load(f"{url}/g.pt#sha256={'1' * 64}")
    with pytest.raises(PixelfolderError, match="64 hex digits"):
        pixelfolder.load(f"{url}/g.pt#sha256=abc")


def test_offline_names_the_url_and_the_cache_path(tmp_path, capsys):
    with socket.socket() as s:                 # a port nobody listens on: connection refused, as when offline
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x/net.pkl"
    code = main(["generate", "--network", url, "--outdir", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert url in err and str(networks.cache_path(url)) in err and "offline?" in err


def test_a_file_dropped_at_the_cache_path_is_used_offline(tmp_path, tiny):
    url = "http://127.0.0.1:9/nowhere/g.pt"             # never contacted: the file is already there
    target = networks.cache_path(url)
    target.parent.mkdir(parents=True)
    pixelfolder.save(tiny, target)
    assert same_weights(pixelfolder.load(url), tiny)


def test_missing_url_is_one_line(server):
    _, url, _ = server
    with pytest.raises(PixelfolderError, match="cannot download .*HTTP 404"):
        pixelfolder.load(f"{url}/missing.pt")


def test_run_directory_opens_its_latest_snapshot(tmp_path, tiny):
    run = tmp_path / "run"
    run.mkdir()
    pixelfolder.save(pixelfolder.create("stylegan2-tiny"), run / "network-snapshot-000004.pt")
    pixelfolder.save(tiny, run / "network-snapshot-000012.pt")
    pixelfolder.save(pixelfolder.create("stylegan2-tiny"), run / "network-snapshot-000010.pt")
    assert networks.latest_snapshot(run).name == "network-snapshot-000012.pt"
    assert same_weights(pixelfolder.load(run), tiny)
    with pytest.raises(PixelfolderError, match="without network-snapshot"):
        pixelfolder.load(tmp_path)


def test_safetensors_round_trip_and_record(tmp_path, tiny):
    path = tmp_path / "g.safetensors"
    pixelfolder.save(tiny, path, {"note": "hello"})
    from safetensors import safe_open
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    assert {"format", "version", "arch", "kind", "config", "metadata"} <= header.keys()
    assert not zipfile.is_zipfile(path)
    G = pixelfolder.load(path)
    assert same_weights(G, tiny) and G.config == tiny.config and G.metadata["note"] == "hello"


def test_foreign_safetensors_is_refused_in_one_line(tmp_path):
    from safetensors.torch import save_file
    save_file({"w": torch.zeros(2)}, str(tmp_path / "x.safetensors"))
    with pytest.raises(PixelfolderError, match="without a pixelfolder record"):
        pixelfolder.load(tmp_path / "x.safetensors")


def test_torch_file_with_classes_never_suggests_weights_only_false(tmp_path):
    import argparse
    torch.save({"g_ema": {}, "args": argparse.Namespace(size=256)}, tmp_path / "train.pt")
    with pytest.raises(PixelfolderError) as info:
        pixelfolder.load(tmp_path / "train.pt")
    message = str(info.value)
    assert "argparse.Namespace" in message and "never unpickles" in message
    assert "weights_only=False" not in message and "\n" not in message


def test_unknown_file_lists_the_formats_tried(tmp_path):
    (tmp_path / "junk.bin").write_bytes(b"hello world, not a network")
    with pytest.raises(PixelfolderError, match="none of the formats tried .*NVlabs network pickle"):
        pixelfolder.load(tmp_path / "junk.bin")
    torch.save({"hello": torch.zeros(1), "x": 1}, tmp_path / "dict.pt")
    with pytest.raises(PixelfolderError, match="tried .*pixelfolder checkpoint"):
        pixelfolder.load(tmp_path / "dict.pt")


def test_pixelpyramids_checkpoint_without_params_says_so(tmp_path):
    torch.save([{"module.w": torch.zeros(1)}, {"module.w": torch.zeros(1)}], tmp_path / "best.pth")
    with pytest.raises(PixelfolderError, match="PixelPyramids checkpoint.*--params"):
        pixelfolder.load(tmp_path / "best.pth")


def test_non_network_pickle_and_malicious_pickle(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            import os
            return (os.system, (f"touch {marker}",))
    (tmp_path / "evil.pkl").write_bytes(pickle.dumps({"G_ema": Evil()}, protocol=4))
    with pytest.raises(PixelfolderError, match="refusing to unpickle .*system"):
        pixelfolder.load(tmp_path / "evil.pkl")
    assert not marker.exists()
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps({"a": 1}, protocol=4))
    with pytest.raises(PixelfolderError, match="without G, G_ema or D"):
        pixelfolder.load(tmp_path / "plain.pkl")


def test_which_picks_a_pickle_network_and_load_all_lists_them():
    nets = pixelfolder.load_all(FIXTURES / "creps_snapshot_tiny.pkl")
    assert sorted(nets) == ["d", "g", "g_ema"]
    assert nets["d"].kind == "discriminator" and nets["g_ema"].arch == "creps"
    D = pixelfolder.load(FIXTURES / "creps_snapshot_tiny.pkl", which="d")
    assert same_weights(D, nets["d"])


def test_preset_by_name_is_deterministic():
    assert same_weights(pixelfolder.load("stylegan2-tiny"), pixelfolder.load("stylegan2-tiny"))


def test_zoo_entries_are_complete_and_names_unique():
    from pixelfolder import registry
    names = [p.name for p in zoo.PRETRAINED]
    assert len(names) == len(set(names))
    assert not set(names) & set(registry.list_models())             # never shadows a preset
    for p in zoo.PRETRAINED:
        assert p.url.startswith(("http://", "https://")) and p.format and p.model
        assert p.direct or p.filename and p.note                      # manual downloads say how
        assert p.supported or p.note
    models = {p.model for p in zoo.PRETRAINED}
    for wanted in ("PixelFolder", "CREPS", "INR-GAN", "INR-GAN-bil", "StyleGAN2 (NGC)", "StyleGAN2-ADA",
                   "StyleGAN3-T", "StyleGAN3-R", "PixelPyramids"):
        assert wanted in models


def test_unsupported_zoo_entry_is_refused_before_any_download(monkeypatch):
    monkeypatch.setattr(networks, "download", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(PixelfolderError, match="StyleGAN3 networks are not supported yet"):
        pixelfolder.load("stylegan3-t-ffhq1024")


def test_direct_zoo_entry_downloads_its_url(monkeypatch, tmp_path, tiny):
    seen = []

    def fake_download(url, sha256=None, progress=None):
        seen.append(url)
        pixelfolder.save(tiny, tmp_path / "net.pt")
        return tmp_path / "net.pt"
    monkeypatch.setattr(networks, "download", fake_download)
    assert same_weights(pixelfolder.load("inrgan-churches256"), tiny)
    assert seen == [zoo.BY_NAME["inrgan-churches256"].url]


def test_manual_zoo_entry_instructs_then_works_from_the_cache(cache, tiny):
    with pytest.raises(PixelfolderError, match="Google Drive.*PixelFolder_ffhq_256.pt.*put it at"):
        pixelfolder.load("pixelfolder-ffhq256")
    dropped = cache / "networks" / "pretrained" / "PixelFolder_ffhq_256.pt"
    dropped.parent.mkdir(parents=True)
    pixelfolder.save(tiny, dropped)
    assert same_weights(pixelfolder.load("pixelfolder-ffhq256"), tiny)


def test_models_pretrained_lists_every_entry(capsys):
    assert main(["models", "--pretrained"]) == 0
    out = capsys.readouterr().out
    for p in zoo.PRETRAINED:
        assert p.name in out and p.url in out


def test_fifo_and_special_files_are_refused(tmp_path):
    import os
    os.mkfifo(tmp_path / "fifo.pt")
    with pytest.raises(PixelfolderError, match="not a regular file"):
        pixelfolder.load(tmp_path / "fifo.pt")


def test_a_dataset_zip_is_not_taken_for_a_checkpoint(tmp_path):
    with zipfile.ZipFile(tmp_path / "data.zip", "w") as z:
        z.writestr("00000/img00000000.png", b"\x89PNG not really")
        z.writestr("dataset.json", "{}")
    with pytest.raises(PixelfolderError, match="zip without a torch checkpoint inside .*dataset zip"):
        pixelfolder.load(tmp_path / "data.zip")
