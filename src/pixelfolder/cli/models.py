"""`pixelfolder models`: every preset with its kind, resolution, parameters and forward GMACs."""
from __future__ import annotations

from ..registry import KINDS


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list architectures and presets")
    p.add_argument("--kind", choices=KINDS, help="only this kind")
    p.add_argument("--no-macs", action="store_true", help="skip counting MACs (faster)")
    p.add_argument("--pretrained", action="store_true",
                   help="list the official pretrained networks instead: short name, URL, format, converter")
    p.add_argument("--converters", action="store_true",
                   help="list the converters of official files instead (the `convert --arch` values)")
    p.set_defaults(run=run)


def preset_cost(name: str, macs: bool = True) -> dict:
    """Parameters and per-image forward MACs of a preset, counted on the meta device (no memory, no compute)."""
    import torch
    from .. import registry
    from ..metrics.cost import count_macs
    from ..utils import count_parameters
    model = registry.create(name, device="meta", compute_w_avg=False).eval()
    row = {"name": name, "arch": model.arch, "kind": model.kind, "resolution": model.resolution,
           "params": count_parameters(model)}
    if macs and hasattr(model, "official_macs"):
        row["total_macs"] = model.official_macs()     # what the official code computes (ours may do less)
    elif macs:
        if model.kind == "generator":
            x = torch.zeros(1, model.z_dim, device="meta")
        elif model.kind == "likelihood":     # data-dependent checks need real values: see `pixelfolder bench`
            return row
        else:
            x = torch.zeros(1, 3, model.resolution, model.resolution, device="meta")
        with torch.no_grad():
            row.update({f"{k}_macs": v for k, v in count_macs(model, x).items()})
    return row


def print_pretrained() -> None:
    from ..utils import cache_root
    from ..zoo import PRETRAINED
    print(f"{'name':<28} {'model':<20} {'dataset':<24} {'res':>5}  how")
    for p in PRETRAINED:
        how = ("--network NAME (downloaded once)" if p.direct and p.supported else
               "not supported yet" if not p.supported else "manual download")
        print(f"{p.name:<28} {p.model[:20]:<20} {p.dataset[:24]:<24} {p.resolution or '-':>5}  {how}")
        print(f"    {p.url}")
        print(f"    format: {p.format}; read by: {p.converter or '-'}" + (f"; {p.note}" if p.note else ""))
    print(f"cache: {cache_root() / 'networks'} (PIXELFOLDER_CACHE overrides); manual downloads go to "
          f"{cache_root() / 'networks' / 'pretrained'}/<file name> to work by name")


def print_converters() -> None:
    from .. import registry
    layouts = {"state_dict": "official torch state_dict / train.py dict", "nvlabs": "NVlabs network pickle or "
               "its state_dict", "pixelpyramids": "per-level checkpoint + params json"}
    print(f"{'--arch':<16} {'makes':<14} reads")
    for c in registry.converters():
        if c.cli:
            print(f"{c.name:<16} {c.arch:<14} {layouts[c.layout]}")


def run(args) -> int:
    from .. import registry
    if args.pretrained:
        print_pretrained()
        return 0
    if args.converters:
        print_converters()
        return 0
    print(f"{'preset':<20} {'arch':<12} {'kind':<14} {'res':>5} {'params (M)':>11} {'GMACs':>9}")
    rows = [preset_cost(name, macs=not args.no_macs) for name in registry.list_models(args.kind)]
    for row in sorted(rows, key=lambda r: (r['kind'], r['arch'], r['resolution'], r['name'])):
        name = row['name']
        macs = f"{row['total_macs'] / 1e9:9.2f}" if "total_macs" in row else f"{'-':>9}"
        print(f"{name:<20} {row['arch']:<12} {row['kind']:<14} {row['resolution']:>5} "
              f"{row['params'] / 1e6:11.3f} {macs}")
    return 0
