"""Run by test_distributed under torchrun: train, then save this rank's parameters."""
import os
import sys

import torch

from pixelfolder.training.loop import training_loop
from tests.helpers import options

data, run_dir, out = sys.argv[1:4]
torch.set_num_threads(1)
result = training_loop(options(data, run_dir, kimg=0.024, r1_every=2, pl_every=2, model="stylegan2",
                               preset="stylegan2-tiny", mixing=0.5, pl_weight=2.0, augment="diffaug"))
rank = int(os.environ.get("RANK", "0"))
torch.save({n: {k: v.detach().clone() for k, v in m.named_parameters()}
            for n, m in (("G", result.G), ("D", result.D), ("G_ema", result.G_ema))}, f"{out}/rank{rank}.pt")
