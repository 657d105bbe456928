"""A screenshot of `pixelfolder serve`'s page for the README (docs/explorer.png), taken in headless chromium.

    python tools/explorer_screenshot.py                        # the default: see below; a few seconds on a CPU
    python tools/explorer_screenshot.py --network runs/00000-demo --seed 3 --out docs/explorer.png

Default network: pixelfolder-tiny's architecture built at 128 px (random weights, torch seed 0), so that the page
shows two stages (32 and 128 px); --network takes any spec `pixelfolder serve` takes (a trained run is better).
Needs the playwright package and a chromium (default /usr/bin/chromium, Debian's; no browser download).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from urllib.parse import urlencode

import torch

import pixelfolder
from pixelfolder.explore.serve import build_server, serving

PAGE_SIZE = {"width": 1180, "height": 760}


def default_network():
    torch.manual_seed(0)
    G = pixelfolder.create("pixelfolder-tiny", resolution=128).eval()
    return G, "pixelfolder-tiny @ 128 px", ["random weights (torch seed 0), not trained"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--network", help="a network spec (default: a random 128 px PixelFolder, see the docstring)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--psi", type=float, default=0.7)
    ap.add_argument("--mix-seed", type=int, default=None, help="also show style mixing with this seed")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--out", default="docs/explorer.png")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright
    if args.network:
        G, label, notes = pixelfolder.load(args.network, kind="generator"), args.network, ()
    else:
        G, label, notes = default_network()
    query = {"seed": args.seed, "psi": args.psi, "noise": "const"}
    if args.mix_seed is not None:
        query.update(mix_seed=args.mix_seed, crossover=max(1, G.n_latent // 2))
    query = urlencode(query)
    with serving(build_server(G, label=label, notes=notes, quiet=True)) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport=PAGE_SIZE)
            page.goto(f"{server.url}#{query}")
            page.wait_for_function("q => (document.getElementById('image').dataset.query || '').startsWith(q)",
                                   arg=query, timeout=30000)     # (any-scale models add &scale=1)
            out = Path(args.out)
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(out), full_page=True)
        finally:
            browser.close()
    print(f"wrote {out} ({label}, {query})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
