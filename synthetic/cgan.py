"""A conditional Wasserstein GAN (gradient penalty) over multi-asset return windows (length x n_assets),
conditioned on the market state: the volatility regime of the window (quantile bins of its mean absolute
return, edges learnt on the training windows; 0 = calmest). Trained with the design's ESG constraint on
the generator::

    loss_G = adversarial_loss + beta * (1 - esg_score(window's cumulative return per asset, temperature 0.05))

with ``adversarial_loss = -mean(critic(fake))`` (WGAN). The generator is factor-structured (see
``Generator``); the critic sees windows in ``asinh`` space, which tames the fat tails without hiding
them. Seeded; CPU here, CUDA when present (same code). Checkpoints make a fit resumable.

Windows are in units of each asset's daily volatility (see :mod:`synthetic.data`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from synthetic import checkpoint as ckpt
from synthetic.esg import esg_constrained_loss, mean_esg_score

VERSION = "cgan-wgangp-2"


@dataclass(frozen=True)
class GANConfig:
    """noise: latent size; hidden: width of both networks; regimes: volatility bins conditioned on;
    critic_steps: critic updates per generator update; gp: gradient-penalty weight; beta: ESG weight (>= 0);
    esg_epochs: the ESG term is on for the last ``esg_epochs`` epochs only (realism first, then the tilt:
    fits at different beta share their first epochs exactly, so the sweep compares like with like);
    esg_temperature: softmax temperature of the ESG score (a window's cumulative returns are ~N(0, 5) in
    volatility units; 0.05 makes the implied portfolio decisive enough for beta in 0..2 to move it beyond the
    run-to-run noise of GAN training, whose WGAN gradients are of order one);
    threads: CPU threads during the fit (1 is fastest for these small networks on shared cores, and keeps
    results bit-identical between runs)."""

    noise: int = 32
    hidden: int = 128
    regimes: int = 4
    factors: int = 5
    epochs: int = 450
    batch_size: int = 128
    lr: float = 5e-4
    critic_steps: int = 2
    gp: float = 10.0
    critic_features: bool = True
    beta: float = 0.0
    esg_temperature: float = 0.05
    esg_epochs: int = 100
    seed: int = 20260101
    checkpoint_every: int = 25
    threads: int = 1


def regime_edges(windows: np.ndarray, n_regimes: int) -> np.ndarray:
    """Inner quantile edges (n_regimes - 1,) of the windows' mean absolute return."""
    level = np.abs(windows).mean(axis=(1, 2))
    return np.quantile(level, np.linspace(0, 1, n_regimes + 1)[1:-1])


def regimes(windows: np.ndarray, edges: np.ndarray | None = None) -> np.ndarray:
    """Regime label (n,) of each window; without ``edges``, two regimes split at the median
    (1 = turbulent: cross-asset mean absolute return above it)."""
    level = np.abs(windows).mean(axis=(1, 2))
    if edges is None:
        edges = np.array([np.median(level)])
    return np.searchsorted(edges, level, side="right").astype(np.int64)


def _validate(windows: np.ndarray, esg: np.ndarray) -> None:
    if (
        windows.ndim != 3
        or windows.shape[-1] != len(esg)
        or len(windows) < 2
        or not np.isfinite(windows).all()
    ):
        raise ValueError(
            f"windows shape {windows.shape} is invalid: expected finite (n >= 2, length, {len(esg)}) "
            "windows, one ESG score per asset"
        )


def _generator_class() -> Any:
    import torch
    from torch import nn

    class Generator(nn.Module):
        """A factor-structured generator. From h = MLP([z, regime]) it draws, per day t of the window, a
        log-volatility v_t and k factor returns f_t; loadings B (n_assets x k) and idiosyncratic scales
        a_i are learnt (initialised from the training data's principal components):

            r_ti = exp(v_t) * (f_t . B_i + exp(a_i + w_t + s * u_ti) * eps_ti),   u, eps ~ N(0, 1)

        so cross-asset correlation lives in B, volatility clustering and regimes in v, fat tails in the
        volatility mixture and the log-normal scale of the idiosyncratic shocks (s learnt)."""

        def __init__(self, inputs: int, hidden: int, length: int, assets: int, factors: int) -> None:
            super().__init__()
            act = nn.LeakyReLU(0.2)
            self.length, self.assets, self.factors = length, assets, factors
            self.size = length * assets
            self.body = nn.Sequential(nn.Linear(inputs, hidden), act, nn.Linear(hidden, hidden), act)
            self.head = nn.Linear(hidden, length * (2 + factors))
            self.loadings = nn.Parameter(torch.zeros(assets, factors))
            self.idio = nn.Parameter(torch.zeros(assets))
            self.tail = nn.Parameter(torch.tensor(0.3))

        def forward(self, zc: Any, noise: Any) -> Any:
            n = len(zc)
            out = self.head(self.body(zc)).view(n, self.length, 2 + self.factors)
            log_vol, log_idio, factors = out[..., :1], out[..., 1:2], out[..., 2:]
            u, eps = noise.view(n, 2, self.length, self.assets).unbind(1)
            idio = torch.exp(self.idio + log_idio.clamp(-5, 4) + self.tail * u) * eps
            returns = torch.exp(log_vol.clamp(-5, 4)) * (factors @ self.loadings.T + idio)
            return returns.reshape(n, -1)

        def initialise(self, windows: Any) -> None:
            """Loadings and idiosyncratic scales from the principal components of the pooled returns."""
            rows = torch.as_tensor(windows.reshape(-1, self.assets), dtype=torch.float32)
            cov = torch.cov(rows.T)
            values, vectors = torch.linalg.eigh(cov)
            top = torch.argsort(values, descending=True)[: self.factors]
            loadings = vectors[:, top] * values[top].clamp(min=0).sqrt()
            resid = (torch.diag(cov) - (loadings**2).sum(1)).clamp(min=1e-3)
            with torch.no_grad():
                self.loadings.copy_(loadings)
                self.idio.copy_(0.5 * torch.log(resid) - self.tail**2 / 2)

    return Generator


def _Generator(inputs: int, hidden: int, length: int, assets: int, factors: int) -> Any:
    return _generator_class()(inputs, hidden, length, assets, factors)


def _Critic(net: Any, length: int, assets: int, features: bool) -> Any:
    import torch
    from torch import nn

    class Critic(nn.Module):
        """WGAN critic on [window (asinh space), summaries, regime]; the summaries (each day's
        cross-sectional mean and dispersion, each asset's mean |value|, the window's mean |value|) hand it
        the cross-asset statistics an MLP would otherwise have to discover."""

        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, xc: Any) -> Any:
            if not features:
                return self.net(xc)
            x, c = xc[:, : length * assets], xc[:, length * assets :]
            w = x.view(len(x), length, assets)
            parts = [
                x,
                w.mean(2),
                (w.var(2, unbiased=False) + 1e-6).sqrt(),
                w.abs().mean(1),
                w.abs().mean((1, 2))[:, None],
                c,
            ]
            return self.net(torch.cat(parts, 1))

    return Critic()


def _device() -> Any:
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


class ConditionalGAN:
    """Estimator in the scikit-learn shape: ``ConditionalGAN(config).fit(windows, esg).sample(n)``."""

    def __init__(self, config: GANConfig = GANConfig()) -> None:
        self.config = config

    def _nets(self, length: int, assets: int) -> tuple[Any, Any]:
        import torch
        from torch import nn

        cfg = self.config
        torch.manual_seed(cfg.seed)
        act = nn.LeakyReLU(0.2)
        size = length * assets
        gen = _Generator(cfg.noise + cfg.regimes, cfg.hidden, length, assets, cfg.factors)
        extra = 2 * length + assets + 1 if cfg.critic_features else 0
        critic = _Critic(
            nn.Sequential(
                nn.Linear(size + extra + cfg.regimes, cfg.hidden),
                act,
                nn.Linear(cfg.hidden, cfg.hidden),
                act,
                nn.Linear(cfg.hidden, 1),
            ),
            length,
            assets,
            cfg.critic_features,
        )
        return gen.to(_device()), critic.to(_device())

    def fit(
        self,
        windows: np.ndarray,
        esg: np.ndarray,
        checkpoint: Path | None = None,
        progress: Callable[[int, int, dict[str, float]], None] = lambda *_: None,
    ) -> ConditionalGAN:
        """Fit on real ``windows`` (n, length, n_assets) with ``esg`` (n_assets,) in [0, 1].

        With ``checkpoint``, the state is saved there every ``checkpoint_every`` epochs and at the end, and a
        fit finding a checkpoint of the same configuration resumes from its epoch (possibly with nothing left
        to do). ``progress(epoch, epochs, losses)`` is called after each epoch.
        """
        with threads(self.config.threads):
            return self._fit(windows, esg, checkpoint, progress)

    def _fit(
        self,
        windows: np.ndarray,
        esg: np.ndarray,
        checkpoint: Path | None,
        progress: Callable[[int, int, dict[str, float]], None],
    ) -> ConditionalGAN:
        import torch
        import torch.nn.functional as F

        cfg = self.config
        if cfg.beta < 0:
            raise ValueError(f"beta={cfg.beta!r} is invalid: expected a number >= 0")
        _validate(windows, esg)
        n, length, assets = windows.shape
        device = _device()
        gen, critic = self._nets(length, assets)
        gen.initialise(windows)
        opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        opt_c = torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
        rng = torch.Generator().manual_seed(cfg.seed)
        edges = regime_edges(windows, cfg.regimes)
        self.regime_weights_ = np.bincount(regimes(windows, edges), minlength=cfg.regimes) / n
        start, history = 0, []
        saved = ckpt.load(checkpoint) if checkpoint is not None else None
        if (
            saved is not None
            and saved["config"] == _resumable(cfg)
            and saved["shape"] == (length, assets)
            and saved["epoch"] <= cfg.epochs
        ):
            gen.load_state_dict(saved["generator"])
            critic.load_state_dict(saved["critic"])
            opt_g.load_state_dict(saved["opt_g"])
            opt_c.load_state_dict(saved["opt_c"])
            rng.set_state(saved["rng"])
            start, history, edges = saved["epoch"], saved["history"], saved["edges"]
        self.resumed_from_ = start
        x_all = torch.tensor(np.arcsinh(windows).reshape(n, -1), dtype=torch.float32, device=device)
        c_all = F.one_hot(torch.tensor(regimes(windows, edges)), cfg.regimes).float().to(device)
        esg_t = torch.tensor(esg, dtype=torch.float32, device=device)

        def fake_batch(c: Any) -> Any:
            z = torch.randn(len(c), cfg.noise, generator=rng).to(device)
            eps = torch.randn(len(c), 2 * gen.size, generator=rng).to(device)
            return gen(torch.cat([z, c], 1), eps)

        for epoch in range(start, cfg.epochs):
            order = torch.randperm(n, generator=rng)
            step = cfg.batch_size * cfg.critic_steps
            for first in range(0, n - cfg.batch_size + 1, step):
                for k in range(cfg.critic_steps):
                    idx = order[first + k * cfg.batch_size : first + (k + 1) * cfg.batch_size]
                    if len(idx) < 2:
                        continue
                    x, c = x_all[idx], c_all[idx]
                    with torch.no_grad():
                        fake = torch.asinh(fake_batch(c))
                    alpha = torch.rand(len(idx), 1, generator=rng).to(device)
                    mix = (alpha * x + (1 - alpha) * fake).requires_grad_(True)
                    (grad,) = torch.autograd.grad(
                        critic(torch.cat([mix, c], 1)).sum(), mix, create_graph=True
                    )
                    penalty = ((grad.norm(dim=1) - 1) ** 2).mean()
                    c_loss = critic(torch.cat([fake, c], 1)).mean() - critic(torch.cat([x, c], 1)).mean()
                    opt_c.zero_grad()
                    (c_loss + cfg.gp * penalty).backward()
                    opt_c.step()
                c = c_all[order[first : first + cfg.batch_size]]
                fake_returns = fake_batch(c)
                fake = torch.asinh(fake_returns)
                adversarial = -critic(torch.cat([fake, c], 1)).mean()
                exposure = fake_returns.view(len(c), length, assets).sum(dim=1)
                beta = cfg.beta if epoch >= cfg.epochs - cfg.esg_epochs else 0.0
                g_loss = esg_constrained_loss(adversarial, exposure, esg_t, beta, cfg.esg_temperature)
                opt_g.zero_grad()
                g_loss.backward()
                opt_g.step()
            history.append({"critic": float(c_loss.detach()), "generator": float(g_loss.detach())})
            progress(epoch + 1, cfg.epochs, history[-1])
            done = epoch + 1 == cfg.epochs
            if checkpoint is not None and (done or (epoch + 1) % cfg.checkpoint_every == 0):
                ckpt.save(
                    checkpoint,
                    {
                        "config": _resumable(cfg),
                        "shape": (length, assets),
                        "epoch": epoch + 1,
                        "generator": gen.state_dict(),
                        "critic": critic.state_dict(),
                        "opt_g": opt_g.state_dict(),
                        "opt_c": opt_c.state_dict(),
                        "rng": rng.get_state(),
                        "history": history,
                        "edges": edges,
                        "regime_weights": self.regime_weights_,
                        "version": VERSION,
                        "full_config": dataclasses.asdict(cfg),
                    },
                )
        self.generator_, self.edges_, self.shape_, self.history_ = (
            gen.eval(),
            edges,
            (length, assets),
            history,
        )
        self.critic_ = critic.eval()
        return self

    @classmethod
    def load(cls, path: Path, windows: np.ndarray | None = None) -> ConditionalGAN:
        """A fitted model from a checkpoint written by :meth:`fit`."""
        saved = ckpt.load(path)
        if saved is None or saved.get("version") != VERSION:
            raise FileNotFoundError(
                f"checkpoint {path} is missing or not a {VERSION} checkpoint: train first"
            )
        model = cls(GANConfig(**saved["full_config"]))
        gen, critic = model._nets(*saved["shape"])
        gen.load_state_dict(saved["generator"])
        critic.load_state_dict(saved["critic"])
        model.critic_ = critic.eval()
        model.generator_, model.edges_, model.shape_, model.history_ = (
            gen.eval(),
            saved["edges"],
            saved["shape"],
            saved["history"],
        )
        model.resumed_from_ = saved["epoch"]
        model.regime_weights_ = saved["regime_weights"]
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "generator_"):
            raise RuntimeError("ConditionalGAN is not fitted: call fit() or load() first")

    def esg_score(self, windows: np.ndarray, esg: np.ndarray) -> float:
        """Mean ESG score of windows (n, length, n_assets) as the loss defines it: softmax of each window's
        cumulative return per asset at ``esg_temperature``, dotted with the ESG scores."""
        return mean_esg_score(windows.sum(axis=1), esg, self.config.esg_temperature)

    def plausibility(self, windows: np.ndarray) -> np.ndarray:
        """The critic's score (n,) of windows (n, length, n_assets), each conditioned on its own volatility
        regime: higher = judged more real (WGAN critic scores are comparable only between windows scored by
        the same critic)."""
        import torch
        import torch.nn.functional as F

        self._check_fitted()
        x = torch.tensor(np.arcsinh(windows).reshape(len(windows), -1), dtype=torch.float32)
        c = F.one_hot(torch.tensor(regimes(windows, self.edges_)), self.config.regimes).float()
        with torch.no_grad():
            score = self.critic_(torch.cat([x, c], 1).to(_device()))
        return score.cpu().numpy().astype(np.float64)[:, 0]

    def version(self) -> str:
        """Architecture version plus a digest of the generator's weights."""
        self._check_fitted()
        return f"{VERSION}-{ckpt.weights_digest(self.generator_)}"

    def sample(
        self, n: int, regime: int | None = None, seed: int = 20260101
    ) -> tuple[np.ndarray, np.ndarray]:
        """``n`` windows (n, length, n_assets) and their regimes (n,): all ``regime`` when given, else drawn
        in the training windows' proportions."""
        import torch
        import torch.nn.functional as F

        self._check_fitted()
        k = self.config.regimes
        if regime is not None and regime not in range(k):
            raise ValueError(f"regime={regime!r} is invalid: expected an integer in 0..{k - 1} (0 calmest)")
        if n < 1:
            raise ValueError(f"n={n!r} is invalid: expected a positive number of windows")
        labels = (
            np.full(n, regime, dtype=np.int64)
            if regime is not None
            else np.random.default_rng(seed).choice(k, size=n, p=self.regime_weights_)
        )
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            z = torch.randn(n, self.config.noise, generator=g).to(_device())
            eps = torch.randn(n, 2 * self.generator_.size, generator=g).to(_device())
            c = F.one_hot(torch.tensor(labels), k).float().to(_device())
            out = self.generator_(torch.cat([z, c], 1), eps).view(n, *self.shape_)
        return out.cpu().numpy().astype(np.float64), labels


def _resumable(cfg: GANConfig) -> dict[str, Any]:
    """The configuration a checkpoint must share to be resumed (the target epoch may differ)."""
    return {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("epochs", "checkpoint_every")}


class threads:
    """Context manager: torch's intra-op CPU threads set to ``n`` inside, restored after."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __enter__(self) -> None:
        import torch

        self.before = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self.before)
