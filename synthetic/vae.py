"""A variational autoencoder over exposure vectors: standardised cross-sections (n, n_assets) or windows of
them (n, length, n_assets), flattened, trained with the ESG constraint loss. CPU here, CUDA when present
(same code); seeded; checkpoints make a fit resumable.

Loss per batch: reconstruction loss + KL(q(z|x) || N(0, I)) / features + beta * (1 - esg_score(decoded
exposure)), the exposure of a window being its decoded mean row in the asinh space the VAE models (in
return space sinh grows so fast that a tilt ran away from realism at beta 1).

The reconstruction loss is the Gaussian negative log-likelihood with a noise scale per feature that the
decoder gives with the mean (so a latent can carry a volatility regime), and sampling draws that noise
too: a decoder's mean alone is far smoother than returns (its samples were told apart every time).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthetic import checkpoint as ckpt
from synthetic.cgan import regime_edges, regimes, threads
from synthetic.esg import esg_constrained_loss, mean_esg_score

VERSION = "vae-3"


@dataclass(frozen=True)
class VAEConfig:
    latent: int = 8
    hidden: int = 128
    epochs: int = 60
    batch_size: int = 128
    lr: float = 2e-3
    beta: float = 0.0
    seed: int = 20260101
    checkpoint_every: int = 5
    threads: int = 1
    regimes: int = 4


def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build(features: int, cfg: VAEConfig) -> Any:
    import torch
    from torch import nn

    class VAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(
                nn.Linear(features, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 2 * cfg.latent)
            )
            self.decoder = nn.Sequential(
                nn.Linear(cfg.latent, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 2 * features)
            )

        def decode(self, z: Any) -> tuple[Any, Any]:
            """Mean and log noise scale of each feature given z (the scale depends on z: volatility
            regimes)."""
            mean, log_noise = self.decoder(z).chunk(2, dim=-1)
            return mean, log_noise.clamp(-6, 1)

        def forward(self, x: Any) -> tuple[Any, Any, Any, Any]:
            """Decoded mean, decoded log noise scale, and the posterior's mean and log variance."""
            mu, logvar = self.encoder(x).chunk(2, dim=-1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return (*self.decode(z), mu, logvar)

    torch.manual_seed(cfg.seed)
    return VAE().to(_device())


class WindowVAE:
    """Estimator in the scikit-learn shape: ``WindowVAE(config).fit(data, esg).sample(n)``."""

    def __init__(self, config: VAEConfig = VAEConfig()) -> None:
        self.config = config

    def fit(
        self,
        data: np.ndarray,
        esg: np.ndarray,
        checkpoint: Path | None = None,
        progress: Callable[[int, int, dict[str, float]], None] = lambda *_: None,
    ) -> WindowVAE:
        """Fit on ``data`` (n, n_assets) or (n, length, n_assets); resumes from ``checkpoint`` as
        :meth:`synthetic.cgan.ConditionalGAN.fit` does."""
        with threads(self.config.threads):
            return self._fit(data, esg, checkpoint, progress)

    def _fit(
        self,
        data: np.ndarray,
        esg: np.ndarray,
        checkpoint: Path | None,
        progress: Callable[[int, int, dict[str, float]], None],
    ) -> WindowVAE:
        import torch

        cfg = self.config
        if data.ndim not in (2, 3) or data.shape[-1] != len(esg) or not np.isfinite(data).all():
            raise ValueError(
                f"data shape {data.shape} is invalid: expected finite (rows, {len(esg)}) or "
                f"(rows, length, {len(esg)}) values"
            )
        if cfg.beta < 0:
            raise ValueError(f"beta={cfg.beta!r} is invalid: expected a number >= 0")
        shape = data.shape[1:]
        windows = data if data.ndim == 3 else data[:, None, :]
        device = _device()
        model = build(int(np.prod(shape)), cfg)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        rng = torch.Generator(device="cpu").manual_seed(cfg.seed)
        start, history = 0, []
        saved = ckpt.load(checkpoint) if checkpoint is not None else None
        resumable = {
            k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("epochs", "checkpoint_every")
        }
        if (
            saved is not None
            and saved["config"] == resumable
            and saved["shape"] == shape
            and saved["epoch"] <= cfg.epochs
        ):
            model.load_state_dict(saved["model"])
            opt.load_state_dict(saved["opt"])
            rng.set_state(saved["rng"])
            torch.set_rng_state(saved["torch_rng"])
            start, history = saved["epoch"], saved["history"]
        self.resumed_from_ = start
        x_all = torch.tensor(np.arcsinh(data).reshape(len(data), -1), dtype=torch.float32, device=device)
        esg_t = torch.tensor(esg, dtype=torch.float32, device=device)
        steps = windows.shape[1]
        for epoch in range(start, cfg.epochs):
            order = torch.randperm(len(x_all), generator=rng)
            total = 0.0
            for first in range(0, len(order), cfg.batch_size):
                x = x_all[order[first : first + cfg.batch_size]]
                recon, log_noise, mu, logvar = model(x)
                recon_loss = torch.mean(0.5 * ((recon - x) * torch.exp(-log_noise)) ** 2 + log_noise)
                kl = -0.5 * torch.mean(1 + logvar - mu**2 - logvar.exp()) * cfg.latent / x.shape[1]
                exposure = recon.view(len(x), steps, -1).mean(
                    dim=1
                )  # asinh space: a tilt costs realism smoothly
                loss = esg_constrained_loss(recon_loss + kl, exposure, esg_t, cfg.beta)
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(x)
            history.append({"loss": total / len(x_all)})
            progress(epoch + 1, cfg.epochs, history[-1])
            if checkpoint is not None and (
                epoch + 1 == cfg.epochs or (epoch + 1) % cfg.checkpoint_every == 0
            ):
                ckpt.save(
                    checkpoint,
                    {
                        "config": resumable,
                        "full_config": dataclasses.asdict(cfg),
                        "shape": shape,
                        "epoch": epoch + 1,
                        "model": model.state_dict(),
                        "opt": opt.state_dict(),
                        "rng": rng.get_state(),
                        "torch_rng": torch.get_rng_state(),
                        "history": history,
                        "version": VERSION,
                        "edges": regime_edges(windows, cfg.regimes),
                    },
                )
        self.model_, self.shape_, self.history_ = model.eval(), shape, history
        self.edges_ = regime_edges(windows, cfg.regimes)
        return self

    @classmethod
    def load(cls, path: Path) -> WindowVAE:
        saved = ckpt.load(path)
        if saved is None or saved.get("version") != VERSION:
            raise FileNotFoundError(
                f"checkpoint {path} is missing or not a {VERSION} checkpoint: train first"
            )
        out = cls(VAEConfig(**saved["full_config"]))
        model = build(int(np.prod(saved["shape"])), out.config)
        model.load_state_dict(saved["model"])
        out.model_, out.shape_, out.history_, out.edges_ = (
            model.eval(),
            saved["shape"],
            saved["history"],
            saved["edges"],
        )
        out.resumed_from_ = saved["epoch"]
        return out

    def esg_score(self, samples: np.ndarray, esg: np.ndarray) -> float:
        """Mean ESG score of samples as the loss defines it (each sample's mean row in asinh space, the
        space the VAE models, temperature 1)."""
        squashed = np.arcsinh(samples)
        return mean_esg_score(squashed if squashed.ndim == 2 else squashed.mean(axis=1), esg)

    def plausibility(self, data: np.ndarray) -> np.ndarray:
        """Evidence lower bound (n,) of each row of ``data`` shaped like the training rows, in the asinh
        space the VAE models, at the posterior mean (deterministic): minus the Gaussian negative
        log-likelihood (constant dropped) minus the KL term; higher = more plausible to the model."""
        import torch

        if not hasattr(self, "model_"):
            raise RuntimeError("WindowVAE is not fitted: call fit() or load() first")
        x = torch.tensor(np.arcsinh(data).reshape(len(data), -1), dtype=torch.float32).to(_device())
        with torch.no_grad():
            mu, logvar = self.model_.encoder(x).chunk(2, dim=-1)
            mean, log_noise = self.model_.decode(mu)
            nll = (0.5 * ((mean - x) * torch.exp(-log_noise)) ** 2 + log_noise).sum(1)
            kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(1)
        return (-(nll + kl)).cpu().numpy().astype(np.float64)

    def version(self) -> str:
        if not hasattr(self, "model_"):
            raise RuntimeError("WindowVAE is not fitted: call fit() or load() first")
        return f"{VERSION}-{ckpt.weights_digest(self.model_)}"

    def sample(
        self, n: int, regime: int | None = None, seed: int = 20260101
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` samples shaped like the training rows, drawn from the prior, and the volatility regime of
        each (the VAE is unconditional: ``regime`` must be None)."""
        import torch

        if not hasattr(self, "model_"):
            raise RuntimeError("WindowVAE is not fitted: call fit() or load() first")
        if regime is not None:
            raise ValueError(f"regime={regime!r} is invalid: the VAE is unconditional, expected None")
        if n < 1:
            raise ValueError(f"n={n!r} is invalid: expected a positive number of samples")
        gen = torch.Generator(device="cpu").manual_seed(seed)
        with torch.no_grad():
            z = torch.randn(n, self.config.latent, generator=gen).to(_device())
            mean, log_noise = self.model_.decode(z)
            noise = torch.randn(mean.shape, generator=gen).to(_device()) * torch.exp(log_noise)
            out = torch.sinh(mean + noise).cpu().numpy().astype(np.float64).reshape(n, *self.shape_)
        windows = out if out.ndim == 3 else out[:, None, :]
        return out, regimes(windows, self.edges_)
