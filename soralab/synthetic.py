"""A planted low-rank regression task, for teaching and for tests.

A frozen base map ``W0`` (a ``nn.Linear``) and a true update ``Delta = U V`` of known rank k:
targets are ``y = (W0 + Delta) x``. A rank-r adapter on the base layer can fit it exactly iff
r >= k, and SoRA should find k by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class PlantedTask:
    base: nn.Linear          # the frozen map W0; wrap it with an adapter and fit (x, y)
    delta: torch.Tensor      # the planted update (out x in), rank == true_rank
    true_rank: int
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor

    def model(self) -> nn.Sequential:
        """A fresh one-layer model around a copy of the base map; target name ``"0"``."""
        base = nn.Linear(self.base.in_features, self.base.out_features)
        base.load_state_dict(self.base.state_dict())
        return nn.Sequential(base)


def planted_low_rank(
    dim_in: int = 32, dim_out: int = 32, true_rank: int = 3, n_train: int = 512, n_test: int = 256,
    noise: float = 0.0, seed: int = 0, spectrum: tuple[float, ...] | None = None,
) -> PlantedTask:
    """Build the task. ``spectrum`` gives the singular values of ``Delta`` (default: all 1)."""
    if not 0 < true_rank <= min(dim_in, dim_out):
        raise ValueError(f"true_rank must be in [1, min(dim_in, dim_out)] = [1, {min(dim_in, dim_out)}], "
                         f"got {true_rank}")
    if spectrum is not None and len(spectrum) != true_rank:
        raise ValueError(f"spectrum must have true_rank={true_rank} values, got {len(spectrum)}")
    gen = torch.Generator().manual_seed(seed)
    base = nn.Linear(dim_in, dim_out)
    with torch.no_grad():
        base.weight.copy_(torch.randn(dim_out, dim_in, generator=gen) / dim_in**0.5)
        base.bias.copy_(torch.randn(dim_out, generator=gen) * 0.1)
    base.requires_grad_(False)
    u, _ = torch.linalg.qr(torch.randn(dim_out, true_rank, generator=gen))  # orthonormal columns
    v, _ = torch.linalg.qr(torch.randn(dim_in, true_rank, generator=gen))
    s = torch.tensor(spectrum if spectrum is not None else [1.0] * true_rank)
    delta = u @ torch.diag(s) @ v.T  # (out, k) (k, k) (k, in) -> (out, in), rank k

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, dim_in, generator=gen)
        with torch.no_grad():
            y = base(x) + x @ delta.T + noise * torch.randn(n, dim_out, generator=gen)
        return x, y

    x_train, y_train = sample(n_train)
    x_test, y_test = sample(n_test)
    return PlantedTask(base, delta, true_rank, x_train, y_train, x_test, y_test)
