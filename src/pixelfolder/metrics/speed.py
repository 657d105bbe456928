"""Feature-extraction throughput of the Inception detector: `python -m pixelfolder.metrics.speed --threads 1 2
--batch 32 64` prints img/s (uint8 input -> TF1 resize to 299 -> pool3) for each setting, plus the unfolded NCHW
form for comparison. Each setting: one warm-up batch, then the median of `--repeats` timed batches."""
from __future__ import annotations

import argparse

import torch

from .cost import median, num_threads, time_call


def images_per_second(detector, batch: int, size: int = 256, repeats: int = 3) -> float:
    x = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    return batch / median(time_call(lambda: detector(x), repeats=repeats, warmup=1))


def unfolded_nchw(detector):
    """The same network without batch-norm folding and with NCHW weights (the straightforward form)."""
    from .inception import InceptionV3FID
    net = InceptionV3FID(with_logits=detector.weights.has_logits)
    net.load_state_dict(detector.weights.state_dict)

    @torch.no_grad()
    def run(x):
        from .inception import preprocess
        return net.pool3(preprocess(x))
    return run


def main(argv=None) -> int:
    from .features import load_inception
    p = argparse.ArgumentParser(prog="python -m pixelfolder.metrics.speed", description=__doc__)
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batch", type=int, nargs="+", default=[32, 64])
    p.add_argument("--size", type=int, default=256, help="input image side (resized to 299 by the detector)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--detector", help="Inception weights file (default: as `pixelfolder evaluate`)")
    p.add_argument("--compare", action="store_true", help="also time the unfolded NCHW form")
    args = p.parse_args(argv)
    det = load_inception(args.detector)
    print(f"Inception pool3, {args.size}px uint8 input, weights: {det.weights.describe()}")
    for threads in args.threads:
        for batch in args.batch:
            with num_threads(threads):
                fast = images_per_second(det, batch, args.size, args.repeats)
                line = f"threads {threads}  batch {batch:3d}  channels_last+folded BN: {fast:6.1f} img/s"
                if args.compare:
                    slow = images_per_second(unfolded_nchw(det), batch, args.size, args.repeats)
                    line += f"   NCHW unfolded: {slow:6.1f} img/s"
            print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
