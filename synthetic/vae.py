"""A variational autoencoder over cross-sectional exposure vectors (n_assets,), trained with the ESG
constraint loss. CPU here, CUDA when present (same code); seeded.

Input rows: standardised daily cross-sections (e.g. each stock's return in units of its volatility).
Loss per batch: reconstruction MSE + KL(q(z|x) || N(0, I)) / n_assets + beta * (1 - esg_score(decoded)).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthetic.esg import esg_constrained_loss, esg_score


@dataclass(frozen=True)
class VAEConfig:
    latent: int = 4
    hidden: int = 64
    epochs: int = 60
    batch_size: int = 128
    lr: float = 2e-3
    beta: float = 0.0
    seed: int = 20260101


def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def build(n_assets: int, cfg: VAEConfig) -> Any:
    import torch
    from torch import nn

    class VAE(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(n_assets, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, 2 * cfg.latent))
            self.decoder = nn.Sequential(nn.Linear(cfg.latent, cfg.hidden), nn.ReLU(), nn.Linear(cfg.hidden, n_assets))

        def forward(self, x: Any) -> tuple[Any, Any, Any]:
            mu, logvar = self.encoder(x).chunk(2, dim=-1)
            z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
            return self.decoder(z), mu, logvar

    torch.manual_seed(cfg.seed)
    return VAE().to(_device())


def train(data: np.ndarray, esg: np.ndarray, cfg: VAEConfig,
          progress: Callable[[int, float], None] = lambda _e, _l: None) -> tuple[Any, list[float]]:
    """Fit on ``data`` (n_rows, n_assets); returns the model and the loss per epoch."""
    import torch

    if data.ndim != 2 or data.shape[1] != len(esg) or not np.isfinite(data).all():
        raise ValueError(f"data shape {data.shape} is invalid: expected finite (rows, {len(esg)}) values")
    device = _device()
    model = build(data.shape[1], cfg)
    x_all = torch.tensor(data, dtype=torch.float32, device=device)
    esg_t = torch.tensor(esg, dtype=torch.float32, device=device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    history = []
    for epoch in range(cfg.epochs):
        order = torch.randperm(len(x_all), generator=gen)
        total = 0.0
        for start in range(0, len(order), cfg.batch_size):
            x = x_all[order[start:start + cfg.batch_size]]
            recon, mu, logvar = model(x)
            recon_loss = torch.mean((recon - x) ** 2)
            kl = -0.5 * torch.mean(1 + logvar - mu ** 2 - logvar.exp()) * cfg.latent / x.shape[1]
            loss = esg_constrained_loss(recon_loss + kl, recon, esg_t, cfg.beta)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(x)
        history.append(total / len(x_all))
        progress(epoch + 1, history[-1])
    return model, history


def sample(model: Any, n: int, seed: int = 20260101) -> np.ndarray:
    """``n`` synthetic exposure vectors (n, n_assets) from the prior."""
    import torch

    gen = torch.Generator(device="cpu").manual_seed(seed)
    latent = model.decoder[0].in_features
    with torch.no_grad():
        z = torch.randn(n, latent, generator=gen).to(_device())
        return model.decoder(z).cpu().numpy().astype(np.float64)


def mean_esg(samples: np.ndarray, esg: np.ndarray) -> float:
    import torch

    return float(esg_score(torch.tensor(samples, dtype=torch.float32), torch.tensor(esg, dtype=torch.float32)).mean())
