"""The ESG constraint of the design: ``loss = recon_loss + beta * (1 - esg_score)``.

``esg_score`` of a sample x (n_assets,) is the ESG-weighted exposure of the long-only portfolio the sample
implies: w = softmax(x / temperature), esg_score = sum_i w_i esg_i, with esg_i in [0, 1] from the per-ticker
table. It lies in [0, 1] and is differentiable in x, so the generator can be pushed toward samples whose
implied portfolio leans on high-ESG names. For a batch, the mean score is used.
"""

from __future__ import annotations

from typing import Any


def esg_score(samples: Any, esg: Any, temperature: float = 1.0) -> Any:
    """Per-sample score in [0, 1]; ``samples`` (batch, n_assets) tensor, ``esg`` (n_assets,) tensor in
    [0, 1]."""
    import torch

    weights = torch.softmax(samples / temperature, dim=-1)
    return weights @ esg


def mean_esg_score(exposure: Any, esg: Any, temperature: float = 1.0) -> float:
    """The mean score of exposure rows (n, n_assets) given as arrays (NumPy or lists), as a float."""
    import torch

    return float(
        esg_score(
            torch.tensor(exposure, dtype=torch.float32), torch.tensor(esg, dtype=torch.float32), temperature
        ).mean()
    )


def esg_constrained_loss(
    recon_loss: Any, samples: Any, esg: Any, beta: float, temperature: float = 1.0
) -> Any:
    """``recon_loss + beta * (1 - esg_score)`` with the batch-mean score (a scalar tensor)."""
    if beta < 0:
        raise ValueError(f"beta={beta!r} is invalid: expected a number >= 0")
    return recon_loss + beta * (1 - esg_score(samples, esg, temperature).mean())
