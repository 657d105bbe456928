"""Training objectives: what a kind of model trains with, so that the loop (loop.py) knows no kind or model.

An objective owns its networks (G, D or none, G_ema), their optimizers, its phases (phases.py), how real images
are prepared, what happens around a step (learning-rate decay; the path-length mean is its phase's own update),
its train/evaluation split and the part of the training state it resumes. The registry's `kind` chooses it
(`objective_for`); a new kind of model (say, a diffusion baseline) is a new objective here.
"""
from __future__ import annotations

import copy

import torch

from .. import registry
from ..data.images import from_uint8, xflip
from ..errors import PixelfolderError
from .options import TrainOptions, ema_beta, lazy_adam
from .phases import Context, Phase, d_main, d_reg, g_main, g_reg, nll, update_pl_mean
from .ada import AdaController, AugmentPipe
from .randomness import Draws


class Objective:
    """The common part: G and G_ema from the preset (or the resumed / fine-tuned networks), EMA decay, state."""

    kind: str = ""                  # the registry kind this objective trains
    train_split = "all"             # default dataset split trained on (`--split`)
    held_out_split = "all"          # split the snapshot metrics read
    reals_as_uint8 = False          # phases receive uint8 reals instead of floats in [-1, 1]
    pl_mean: torch.Tensor | None = None   # GANs: the path-length target the G-reg phase updates in place
    augment_pipe: torch.nn.Module | None = None   # GANs with --augment ada: the pipeline ...
    ada: AdaController | None = None              # ... and its p controller

    def __init__(self, opts: TrainOptions, device, resumed: dict | None = None, finetune: dict | None = None):
        self.opts, self.device = opts, device
        self.arch = registry.architecture(registry.preset(opts.preset).arch)
        self.recipe = self.arch.recipe
        self.networks: dict[str, torch.nn.Module | None] = {}     # by phase.net: whose optimizer steps
        self.optimizers: dict[str, torch.optim.Optimizer | None] = {}
        self.phases: list[Phase] = []
        self.build(resumed, finetune)

    def ema_beta(self, step: int) -> float:
        """G_ema's decay at `step`: its half-life, ramped up with the images shown before the step where the
        options say so."""
        return ema_beta(self.opts.batch, self.opts.ema_kimg, self.opts.ema_rampup or 0.0, step * self.opts.batch)

    @classmethod
    def check_options(cls, opts: TrainOptions) -> None:
        """Refuse options that do not apply to this kind of model (one line)."""

    # ----------------------------------------------------------------------------------------------- networks
    def fresh_networks(self) -> dict:
        """{'G': ..., 'D': ...} built from the preset; initial weights depend on the master seed only."""
        overrides = {"resolution": self.opts.resolution} if self.opts.resolution else {}
        if self.opts.mapping_layers:
            overrides["mapping_layers"] = self.opts.mapping_layers
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.opts.seed)
            return self.create_networks(overrides)

    def create_networks(self, overrides: dict) -> dict:
        return {"G": registry.create(self.opts.preset, **overrides)}

    def build(self, resumed: dict | None, finetune: dict | None) -> None:
        from .rundir import model_from
        fresh = self.fresh_networks()
        nets = dict(fresh)
        if resumed is not None:
            nets = {name: resumed[name] and model_from(resumed[name]) for name in fresh}
            G_ema = model_from(resumed["G_ema"]).eval()
        elif finetune:
            nets, G_ema = self.finetuning_networks(finetune, fresh)
        else:
            G_ema = copy.deepcopy(fresh["G"]).eval()
        if resumed is not None or finetune:
            check_resumed(self.opts, fresh["G"], nets["G"])
        self.networks = {name: net and net.to(self.device).train() for name, net in nets.items()}
        self.G_ema = G_ema.to(self.device).requires_grad_(False)

    @staticmethod
    def finetuning_networks(found: dict, fresh: dict):
        """Networks and G_ema from a checkpoint's g, d, g_ema as present (the others stay freshly built)."""
        G = found.get("g", found.get("g_ema", fresh["G"]))
        G_ema = found.get("g_ema", G)
        if G_ema is G:
            G_ema = copy.deepcopy(G)
        nets = {"G": G.train()}
        if "D" in fresh:
            D = found.get("d", fresh["D"])
            nets["D"] = D and D.train()
        return nets, G_ema.eval()

    @property
    def G(self) -> torch.nn.Module:
        return self.networks["G"]

    # -------------------------------------------------------------------------------------------- each step
    def context(self, step: int, autocast, compiled: dict) -> Context:
        G, D = self.networks["G"], self.networks.get("D")
        return Context(G, D, compiled.get("G", G), compiled.get("D", D), self.opts, step, self.device, autocast,
                       self.pl_mean, self.augment_pipe, self.ada)

    def prepare_reals(self, uint8_images: torch.Tensor, step: int, world) -> torch.Tensor:
        """The batch the phases see: float in [-1, 1] (or uint8), with keyed per-sample x-flips under --mirror;
        local sample i is global index i*world + rank."""
        x = uint8_images.to(self.device, non_blocking=True)      # pinned by the loader on CUDA: overlapped
        x = x if self.reals_as_uint8 else from_uint8(x)
        if self.opts.mirror:
            idx = range(world.rank, len(x) * world.world_size, world.world_size)
            flip = Draws(self.opts.seed, step, "flip", idx, self.device).uniform(1).view(-1) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), xflip(x), x)
        return x

    def begin_step(self, step: int) -> None:
        """Per-step exponential learning-rate decay (PixelPyramids' ExponentialLR), a function of the step alone."""
        decay = self.recipe.lr_decay
        if decay != 1.0:
            for group in self.optimizers["G"].param_groups:
                group["lr"] = self.opts.glr * decay ** step

    def before_phase(self, phase: Phase) -> None:
        """Only the phase's network takes gradients."""

    def end_step(self, step: int) -> dict:
        """After every phase of `step`: ADA's p adjusted on its interval; stats to log (device tensors)."""
        if self.ada is None:
            return {}
        self.ada.update(step + 1)
        return {"augment_p": self.ada.p.clone()}

    # ---------------------------------------------------------------------------------------------- state
    def state_dict(self) -> dict:
        from ..checkpoint import to_record
        D, opt_D = self.networks.get("D"), self.optimizers.get("D")
        return {"G": to_record(self.G), "D": D and to_record(D), "G_ema": to_record(self.G_ema),
                "opt_G": self.optimizers["G"].state_dict(), "opt_D": opt_D and opt_D.state_dict(),
                "pl_mean": 0.0 if self.pl_mean is None else float(self.pl_mean),
                "ada": None if self.ada is None else self.ada.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.optimizers["G"].load_state_dict(state["opt_G"])
        if self.optimizers.get("D") is not None:
            self.optimizers["D"].load_state_dict(state["opt_D"])


ADA_INTERVAL = 4    # steps between ADA's adjustments of p (StyleGAN2-ADA ada_interval)
MBSTD_GROUP = 4     # the discriminators' minibatch-stddev group (StyleGAN2: min(4, batch per forward))


class GANObjective(Objective):
    """Non-saturating logistic GAN with lazy R1 and path-length regularisation (StyleGAN2's phases)."""

    kind = "generator"

    @classmethod
    def check_options(cls, opts: TrainOptions) -> None:
        if opts.levels:
            likelihood = ", ".join(registry.list_architectures("likelihood"))
            raise PixelfolderError(f"--levels applies to likelihood models ({likelihood}) only")
        chunk = opts.batch_gpu or opts.batch
        if chunk % min(MBSTD_GROUP, chunk):
            raise PixelfolderError(f"the discriminator's minibatch-stddev takes groups of {MBSTD_GROUP} images: "
                                   f"pass a --batch (or --batch-gpu) divisible by {MBSTD_GROUP}, or below it")

    def create_networks(self, overrides: dict) -> dict:
        G = registry.create(self.opts.preset, **overrides)
        d_arch = self.arch.discriminator
        tiny = registry.preset(self.opts.preset).tiny and f"{d_arch}-tiny" in registry.list_models()
        D = registry.create(f"{d_arch}-tiny" if tiny else d_arch, resolution=G.resolution)
        return {"G": G, "D": D}

    def build(self, resumed, finetune) -> None:
        super().build(resumed, finetune)
        opts, G, D = self.opts, self.networks["G"], self.networks["D"]
        if self.recipe.betas:
            self.optimizers = {"G": torch.optim.Adam(G.parameters(), lr=opts.glr, betas=self.recipe.betas, eps=1e-8),
                               "D": None}
        else:
            g_lr, g_betas = lazy_adam(opts.glr, opts.pl_every)
            d_lr, d_betas = lazy_adam(opts.dlr, opts.r1_every)
            self.optimizers = {"G": torch.optim.Adam(G.parameters(), lr=g_lr, betas=g_betas, eps=1e-8),
                               "D": torch.optim.Adam(D.parameters(), lr=d_lr, betas=d_betas, eps=1e-8)}
        self.pl_mean = torch.zeros((), device=self.device)
        if opts.augment == "ada":
            self.augment_pipe = AugmentPipe(opts.augpipe).to(self.device)
            self.ada = AdaController(target=opts.ada_target, speed_kimg=opts.ada_kimg, interval=ADA_INTERVAL,
                                     batch=opts.batch, device=self.device)
        self.phases = [Phase("Dmain", "D", 1, d_main)]           # the official order: D main, D reg, G main, G reg
        if opts.gamma > 0:
            self.phases.append(Phase("Dreg", "D", opts.r1_every, d_reg))
        self.phases.append(Phase("Gmain", "G", 1, g_main))
        if opts.pl_weight > 0:
            self.phases.append(Phase("Greg", "G", opts.pl_every, g_reg, batch_fraction=0.5, after=update_pl_mean))

    def before_phase(self, phase: Phase) -> None:
        for name, net in self.networks.items():
            net.requires_grad_(name == phase.net)

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.pl_mean.fill_(state["pl_mean"])
        if self.ada is not None and state.get("ada") is not None:
            self.ada.load_state_dict(state["ada"])


class LikelihoodObjective(Objective):
    """Exact likelihood: one phase, the mean negative log-likelihood of uint8 reals (optionally of some levels)."""

    kind = "likelihood"
    train_split = "train"           # every 10th image held out ...
    held_out_split = "test"         # ... for the snapshot bits/dim
    reals_as_uint8 = True

    @classmethod
    def check_options(cls, opts: TrainOptions) -> None:
        if opts.augment != "none":
            raise PixelfolderError(f"--augment {opts.augment} augments what a discriminator sees, and {opts.preset} "
                                   "is a likelihood model with none: train it without --augment")
        if opts.mapping_layers is not None:
            raise PixelfolderError(f"--mapping-layers applies to GANs; {opts.preset} is a likelihood model")

    def build(self, resumed, finetune) -> None:
        super().build(resumed, finetune)
        G = self.networks["G"]
        if self.opts.levels:
            freeze_unselected_levels(G, self.opts.levels)
        # Adam holds every level (frozen ones get no gradient, so Adam leaves them alone): a run can resume with
        # other --levels
        self.optimizers = {"G": torch.optim.Adam(G.parameters(), lr=self.opts.glr, betas=self.recipe.betas,
                                                 eps=1e-8)}
        self.phases = [Phase("NLL", "G", 1, nll)]


def freeze_unselected_levels(G, levels) -> None:
    """--levels: only the selected levels train; the others get requires_grad False."""
    n = len(G.levels)
    bad = [i for i in levels if not -n <= i < n]
    if bad:
        raise PixelfolderError(f"--levels {bad} out of range: {G.arch} has levels 0..{n - 1} (0 = finest)")
    G.requires_grad_(False)
    for i in levels:
        G.levels[i].requires_grad_(True)


def check_resumed(opts: TrainOptions, fresh, resumed) -> None:
    """Refuse to train a resumed network under another architecture's preset or at another resolution."""
    what = f"--resume {opts.resume if opts.resume != 'auto' else opts.run_dir}"
    if resumed.arch != fresh.arch:
        raise PixelfolderError(f"{what} holds a {resumed.arch} network, but this run trains {opts.preset} "
                               f"({fresh.arch}): pass --model/--preset for {resumed.arch}")
    if getattr(resumed, "resolution", None) != getattr(fresh, "resolution", None):
        raise PixelfolderError(f"{what} holds a {resumed.resolution} px {resumed.arch}, but this run trains at "
                               f"{fresh.resolution} px: pass --resolution {resumed.resolution}")


OBJECTIVES = {cls.kind: cls for cls in (GANObjective, LikelihoodObjective)}


def objective_for(kind: str) -> type[Objective]:
    if kind not in OBJECTIVES:
        raise PixelfolderError(f"no training objective for {kind!r} models; known: {', '.join(OBJECTIVES)}")
    return OBJECTIVES[kind]


def objective_for_preset(preset: str) -> type[Objective]:
    """The objective that trains a preset's architecture (chosen by its registry kind)."""
    return objective_for(registry.architecture(registry.preset(preset).arch).kind)
