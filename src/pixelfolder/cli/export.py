"""`pixelfolder export`: a generator as a standalone ONNX or TorchScript graph z -> image, checked after writing.

The graph is G(z, truncation_psi=PSI, noise_mode='const', size=SIZE): psi is baked in, noise is fixed, so its one
input is z (batch, z_dim) float32 and its output the image (batch, 3, SIZE, SIZE) float32 in about [-1, 1]
(pixelfolder/export.py says how the model is put into one traceable form and which exporter is used).
"""
from __future__ import annotations

from .common import add_network_options, finite_float, open_network, positive_int


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export a generator to ONNX or TorchScript (z -> image), parity-checked")
    add_network_options(p, "the generator")
    p.add_argument("--format", choices=["onnx", "torchscript"], default=None,
                   help="onnx (torch.onnx's torch.export-based exporter) or torchscript (torch.jit.trace); default: "
                        "from the --output suffix (.onnx; .pt/.ts/.torchscript)")
    p.add_argument("--output", required=True, help="the file to write, e.g. g.onnx or g.pt")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="a graph that takes any batch size (checked at batch 1 and 3); default: a fixed --batch")
    p.add_argument("--batch", type=positive_int, default=1, help="the fixed batch size without --dynamic-batch "
                                                                  "(default 1)")
    p.add_argument("--truncation-psi", "--trunc", dest="trunc", type=finite_float, default=1.0, metavar="PSI",
                   help="truncation psi, baked into the graph (default 1 = none; re-export for another)")
    p.add_argument("--size", type=positive_int, default=None,
                   help="render size in px of an any-scale model (CIPS, INR-GAN, CREPS); default: its native one")
    p.add_argument("--opset", type=positive_int, default=None, help="ONNX opset (default 18, the lowest)")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="skip the parity check of the written file against the PyTorch model")
    p.set_defaults(run=run)


def run(args) -> int:
    from ..errors import PixelfolderError
    from ..export import check_exportable, export, format_for
    fmt = format_for(args.output, args.format)
    if args.opset is not None and fmt != "onnx":
        raise PixelfolderError("--opset is for --format onnx")
    if args.dynamic_batch and args.batch != 1:
        raise PixelfolderError("give either --dynamic-batch or a fixed --batch, not both")
    G = open_network(args.network, params=args.params)      # any kind: export's own refusal says why not
    check_exportable(G, args.size, args.trunc)
    result = export(G, args.output, fmt, dynamic_batch=args.dynamic_batch, batch=args.batch,
                    truncation_psi=args.trunc, size=args.size, opset=args.opset, check=args.check)
    print(result.summary())
    return 0
