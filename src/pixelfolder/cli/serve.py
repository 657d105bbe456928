"""`pixelfolder serve`: a local web page to explore a generator (seed, truncation, noise, mixing, scale, stages)."""
from __future__ import annotations

from ..errors import PixelfolderError
from .common import NETWORK_HELP, nonnegative_int


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="explore a generator in a local web page",
                       description="Serve a page with controls for seed, truncation psi, noise mode, style mixing, "
                                   "scale (any-scale models) and per-stage images; renders run on --device, one "
                                   "request at a time. Listens on 127.0.0.1 unless --host is given; Ctrl-C stops.")
    p.add_argument("--network", required=True, help=f"the generator: {NETWORK_HELP}")
    p.add_argument("--port", type=nonnegative_int, default=7860, help="TCP port (default 7860; 0 = any free port)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes the page to "
                        "your network)")
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: cuda if available)")
    p.add_argument("--quiet", action="store_true", help="no access log on stderr (errors are still logged)")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..explore.serve import build_server, is_loopback
    from .common import open_network, parse_device
    if args.port > 65535:
        raise PixelfolderError(f"--port must be in [0, 65535], got {args.port}")
    device = parse_device(args.device)
    G = open_network(args.network, kind="generator").to(device)
    server = build_server(G, host=args.host, port=args.port, device=device, label=args.network, quiet=args.quiet)
    if not is_loopback(args.host):
        print(f"note: listening on {args.host}: anyone who can reach this machine on port {server.port} can use the "
              "page (and its compute)")
    print(f"serving {G.arch} ({G.resolution} px) from {args.network} on {device} at {server.url} (Ctrl-C stops)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
    return 0
