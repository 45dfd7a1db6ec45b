"""Baseline generators: what a trained model must beat, fitted on the same training data and scored the same
way (:mod:`synthetic.beta_sweep`). Pure functions of arrays and a seed; windows are (n, length, n_assets)
in units of each asset's training volatility (:mod:`synthetic.data`).

* ``normal``: i.i.d. multivariate normal days (mean and covariance of the training days): no fat tails, no
  volatility clustering; the floor;
* ``ccc_garch_t``: CCC-GARCH(1,1) with Student-t innovations (Bollerslev 1990): a GARCH(1,1)-t per name
  fitted by ``arch`` on the training days only (the held-out blocks cut out of the series), the constant
  correlation of the standardised residuals, innovations drawn through a Gaussian copula with that
  correlation and each name's t marginal (unit variance); each window starts from the fitted conditional
  variances of a training day drawn at random (all names on the same day: the market's volatility state
  then, as filtered historical simulation starts), so windows are independent and their volatility
  levels are the training history's;
* ``copy``: training windows resampled with replacement (a copy machine): realistic by construction and
  useless for privacy or new scenarios; the reference the novelty figures must tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

BASELINES = ("normal", "ccc_garch_t", "copy")
LABELS = {
    "normal": "i.i.d. multivariate normal",
    "ccc_garch_t": "CCC-GARCH(1,1)-t (arch, training days)",
    "copy": "training windows resampled (copy machine)",
}


def _check_days(train_days: np.ndarray, minimum: int = 30) -> None:
    if train_days.ndim != 2 or len(train_days) < minimum or not np.isfinite(train_days).all():
        raise ValueError(
            f"train_days shape {train_days.shape} is invalid: expected finite (n_days >= {minimum}, n_assets)"
        )


def _check_n(n: int, length: int) -> None:
    if n < 1:
        raise ValueError(f"n={n!r} is invalid: expected a positive number of windows")
    if length < 1:
        raise ValueError(f"length={length!r} is invalid: expected a positive number of days")


def normal_iid(train_days: np.ndarray, n: int, length: int, seed: int) -> np.ndarray:
    """``n`` windows of i.i.d. days drawn from the multivariate normal of the training days."""
    _check_days(train_days)
    _check_n(n, length)
    rng = np.random.default_rng(seed)
    mean, cov = train_days.mean(axis=0), np.cov(train_days, rowvar=False)
    return rng.multivariate_normal(mean, cov, size=(n, length), method="cholesky")


@dataclass(frozen=True)
class CCCGarchT:
    """Per-name GARCH(1,1)-t parameters (each (n_assets,)) and the correlation (n_assets, n_assets) of the
    standardised residuals. ``r_t = mu + sqrt(h_t) e_t``, ``h_t = omega + alpha (r_{t-1} - mu)^2 +
    beta h_{t-1}``, ``e_t`` unit-variance Student-t with ``nu`` degrees of freedom."""

    mu: np.ndarray
    omega: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray
    nu: np.ndarray
    corr: np.ndarray
    h_start: np.ndarray

    def sample(self, n: int, length: int, seed: int, burn: int = 0) -> np.ndarray:
        """``n`` independent windows of ``length`` days, each from the conditional variances of a random
        training day, after ``burn`` further simulated days (0: the window starts there)."""
        from scipy import stats

        _check_n(n, length)
        rng = np.random.default_rng(seed)
        h = self.h_start[rng.integers(0, len(self.h_start), size=n)].copy()
        chol = np.linalg.cholesky(self.corr)
        unit = np.sqrt((self.nu - 2) / self.nu)
        out = np.empty((n, length, len(self.mu)))
        for t in range(burn + length):
            z = rng.standard_normal((n, len(self.mu))) @ chol.T
            e = stats.t.ppf(stats.norm.cdf(z), self.nu) * unit
            shock = np.sqrt(h) * e
            if t >= burn:
                out[:, t - burn] = self.mu + shock
            h = self.omega + self.alpha * shock**2 + self.beta * h
        return out


def fit_ccc_garch_t(train_days: np.ndarray) -> CCCGarchT:
    """Fit a GARCH(1,1) with Student-t innovations per column of ``train_days`` (``arch``, constant mean)
    and the correlation of the standardised residuals."""
    from arch import arch_model

    _check_days(train_days, minimum=100)
    params, resid, variance = [], [], []
    for i in range(train_days.shape[1]):
        fit = arch_model(
            train_days[:, i], mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False
        ).fit(disp="off", show_warning=False)
        p = fit.params
        params.append((p["mu"], p["omega"], p["alpha[1]"], p["beta[1]"], p["nu"]))
        resid.append(np.asarray(fit.std_resid))
        variance.append(np.asarray(fit.conditional_volatility) ** 2)
    mu, omega, alpha, beta, nu = (np.array(v, dtype=np.float64) for v in zip(*params, strict=True))
    corr = np.corrcoef(np.array(resid))
    return CCCGarchT(
        mu=mu, omega=omega, alpha=alpha, beta=beta, nu=nu, corr=corr, h_start=np.array(variance).T
    )


def resample_windows(train: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` training windows drawn with replacement: exact copies."""
    if train.ndim != 3 or len(train) < 1:
        raise ValueError(f"train shape {train.shape} is invalid: expected (n >= 1, length, n_assets)")
    _check_n(n, train.shape[1])
    return train[np.random.default_rng(seed).integers(0, len(train), size=n)].copy()


class Baselines:
    """The three baselines fitted once on the training data; ``sample(name, n, seed)`` draws windows."""

    def __init__(self, train: np.ndarray, train_days: np.ndarray) -> None:
        if train.ndim != 3 or train_days.ndim != 2 or train.shape[-1] != train_days.shape[-1]:
            raise ValueError(
                f"train shape {train.shape} and train_days shape {train_days.shape} are invalid: expected "
                "(n, length, n_assets) and (n_days, n_assets)"
            )
        self.train, self.train_days, self.length = train, train_days, train.shape[1]
        self.garch = fit_ccc_garch_t(train_days)

    def sample(self, name: str, n: int, seed: int) -> np.ndarray:
        if name == "normal":
            return normal_iid(self.train_days, n, self.length, seed)
        if name == "ccc_garch_t":
            return self.garch.sample(n, self.length, seed)
        if name == "copy":
            return resample_windows(self.train, n, seed)
        raise ValueError(f"baseline={name!r} is invalid: expected one of {', '.join(BASELINES)}")
