"""A conditional GAN over multi-asset return windows (length x n_assets), conditioned on the market state
(volatility regime: 0 calm, 1 turbulent), trained with the ESG constraint on the generator:
``loss_G = adversarial_loss + beta * (1 - esg_score(window's mean exposure))``. Seeded; CPU or CUDA.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from synthetic.esg import esg_constrained_loss


@dataclass(frozen=True)
class GANConfig:
    noise: int = 16
    hidden: int = 128
    epochs: int = 40
    batch_size: int = 64
    lr: float = 2e-4
    beta: float = 0.0
    seed: int = 20260101


def regimes(windows: np.ndarray) -> np.ndarray:
    """Label each window turbulent (1) when its cross-asset mean absolute return is above the median."""
    level = np.abs(windows).mean(axis=(1, 2))
    return (level > np.median(level)).astype(np.int64)


def _nets(length: int, n_assets: int, cfg: GANConfig) -> tuple[Any, Any]:
    import torch
    from torch import nn

    torch.manual_seed(cfg.seed)
    size = length * n_assets
    gen = nn.Sequential(nn.Linear(cfg.noise + 2, cfg.hidden), nn.LeakyReLU(0.2), nn.Linear(cfg.hidden, cfg.hidden),
                        nn.LeakyReLU(0.2), nn.Linear(cfg.hidden, size))
    disc = nn.Sequential(nn.Linear(size + 2, cfg.hidden), nn.LeakyReLU(0.2), nn.Linear(cfg.hidden, 1))
    return gen, disc


def train(windows: np.ndarray, labels: np.ndarray, esg: np.ndarray, cfg: GANConfig,
          progress: Callable[[int, float, float], None] = lambda *_: None) -> Any:
    """Fit on real ``windows`` (n, length, assets) with regime ``labels`` (n,); returns the generator."""
    import torch
    import torch.nn.functional as F

    if windows.ndim != 3 or len(labels) != len(windows) or not np.isfinite(windows).all():
        raise ValueError(f"windows shape {windows.shape} / labels {len(labels)} are invalid: expected finite "
                         "(n, length, assets) windows and one label per window")
    n, length, assets = windows.shape
    gen, disc = _nets(length, assets, cfg)
    x_all = torch.tensor(windows.reshape(n, -1), dtype=torch.float32)
    c_all = F.one_hot(torch.tensor(labels), 2).float()
    esg_t = torch.tensor(esg, dtype=torch.float32)
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    rng = torch.Generator().manual_seed(cfg.seed)
    bce = torch.nn.BCEWithLogitsLoss()
    for epoch in range(cfg.epochs):
        order = torch.randperm(n, generator=rng)
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            x, c = x_all[idx], c_all[idx]
            z = torch.randn(len(idx), cfg.noise, generator=rng)
            fake = gen(torch.cat([z, c], 1))
            d_loss = bce(disc(torch.cat([x, c], 1)), torch.ones(len(idx), 1)) + \
                bce(disc(torch.cat([fake.detach(), c], 1)), torch.zeros(len(idx), 1))
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            adversarial = bce(disc(torch.cat([fake, c], 1)), torch.ones(len(idx), 1))
            exposure = fake.view(len(idx), length, assets).mean(dim=1)
            g_loss = esg_constrained_loss(adversarial, exposure, esg_t, cfg.beta)
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
        progress(epoch + 1, float(d_loss), float(g_loss))
    gen.shape = (length, assets)  # type: ignore[attr-defined]
    gen.noise = cfg.noise  # type: ignore[attr-defined]
    return gen


def sample(gen: Any, n: int, regime: int, seed: int = 20260101) -> np.ndarray:
    """``n`` windows (n, length, assets) for ``regime`` (0 calm, 1 turbulent)."""
    import torch
    import torch.nn.functional as F

    if regime not in (0, 1):
        raise ValueError(f"regime={regime!r} is invalid: expected 0 (calm) or 1 (turbulent)")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        z = torch.randn(n, gen.noise, generator=g)
        c = F.one_hot(torch.full((n,), regime), 2).float()
        return gen(torch.cat([z, c], 1)).view(n, *gen.shape).numpy().astype(np.float64)
