"""A planted low-rank regression task, and one call that fits an adapter to it: for teaching and for tests.

A frozen base map ``W0`` (a ``nn.Linear``) and a true update ``Delta = U V`` of known rank k:
targets are ``y = (W0 + Delta) x``. A rank-r adapter on the base layer can fit it exactly iff
r >= k, and SoRA should find k by itself.

``fit_planted`` seeds, builds the task, injects, and runs full-batch ``ProximalAdamW`` steps on the MSE.
With ``xi=0`` the optimiser is AdamW bit for bit, so the same call trains a plain LoRA. ``record_every``
keeps a trace of the gates and of ``||A|| * ||B||`` to watch the scale symmetry between them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..config import LoRAConfig
from ..inject import adapter_modules, inject
from ..layers import AdapterLayer, SoRALinear
from ..optim import ProximalAdamW, param_groups


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
    if spectrum is not None and (len(spectrum) != true_rank or not all(float(v) > 0 for v in spectrum)):
        raise ValueError(f"spectrum must have true_rank={true_rank} values, each > 0 (a zero would lower the rank), "
                         f"got {tuple(spectrum)}")
    gen = torch.Generator().manual_seed(seed)
    base = nn.Linear(dim_in, dim_out)
    with torch.no_grad():
        base.weight.copy_(torch.randn(dim_out, dim_in, generator=gen) / dim_in**0.5)
        base.bias.copy_(torch.randn(dim_out, generator=gen) * 0.1)
    base.requires_grad_(False)
    u, _ = torch.linalg.qr(torch.randn(dim_out, true_rank, generator=gen))  # orthonormal columns
    v, _ = torch.linalg.qr(torch.randn(dim_in, true_rank, generator=gen))
    s = torch.tensor(spectrum if spectrum is not None else [1.0] * true_rank, dtype=torch.float32)
    delta = u @ torch.diag(s) @ v.T  # (out, k) (k, k) (k, in) -> (out, in), rank k

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        x = torch.randn(n, dim_in, generator=gen)
        with torch.no_grad():
            y = base(x) + x @ delta.T + noise * torch.randn(n, dim_out, generator=gen)
        return x, y

    x_train, y_train = sample(n_train)
    x_test, y_test = sample(n_test)
    return PlantedTask(base, delta, true_rank, x_train, y_train, x_test, y_test)


@dataclass
class PlantedFit:
    model: nn.Module
    task: PlantedTask
    test_mse: float
    base_mse: float          # the frozen base map alone: the error of an adapter that learned nothing
    active_rank: int         # SoRA: non-zero gates; LoRA: r
    history: dict[str, list] = field(default_factory=dict)  # step, loss, gate_l1, ab_norm, active_rank

    @property
    def relative_mse(self) -> float:
        """Test MSE as a fraction of the base map's: 1 = learned nothing, 0 = found the update."""
        return self.test_mse / self.base_mse


def _adapter(model: nn.Module) -> AdapterLayer:
    layers = [m for _, m in adapter_modules(model)]
    if len(layers) != 1:
        raise ValueError(f"expected one adapter layer on the planted model, found {len(layers)}")
    return layers[0]


@torch.no_grad()
def _snapshot(layer: AdapterLayer) -> dict[str, float]:
    is_sora = isinstance(layer, SoRALinear)
    return {
        "gate_l1": float(layer.gate.abs().sum()) if is_sora else float("nan"),
        "ab_norm": float(torch.linalg.matrix_norm(layer.lora_A) * torch.linalg.matrix_norm(layer.lora_B)),
        "active_rank": layer.active_rank(),
    }


def fit_planted(
    config: LoRAConfig, *, steps: int, lr: float = 1e-2, weight_decay: float = 0.0, xi: float = 0.0,
    prox: str = "paper", seed: int = 0, true_rank: int = 3, record_every: int = 0, **task_kwargs,
) -> PlantedFit:
    """Train ``config``'s adapter on ``planted_low_rank(true_rank, seed=seed, **task_kwargs)``.

    The global RNG is seeded with ``seed`` before the task is built, so the same arguments give the same run.
    ``config.target_modules`` must be ``["0"]``. Runs on one CPU thread (restored afterwards): on matrices
    this small that is the fastest setting.
    ``record_every=k`` records the loss and the gate/A/B norms every k steps (and at step 0).
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if config.target_modules != ["0"]:
        raise ValueError(f"the planted model's only layer is named '0'; use target_modules=['0'], "
                         f"got {config.target_modules}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 32 x 32 matrices: extra threads only add overhead (and stall under load)
    try:
        return _fit(config, steps, lr, weight_decay, xi, prox, seed, true_rank, record_every, task_kwargs)
    finally:
        torch.set_num_threads(threads)


def _fit(config, steps, lr, weight_decay, xi, prox, seed, true_rank, record_every, task_kwargs) -> PlantedFit:
    torch.manual_seed(seed)
    task = planted_low_rank(true_rank=true_rank, seed=seed, **task_kwargs)
    model = inject(task.model(), config)
    layer = _adapter(model)
    opt = ProximalAdamW(param_groups(model, lr=lr, weight_decay=weight_decay, xi=xi), lr=lr, prox=prox)
    history: dict[str, list] = {"step": [], "loss": [], "gate_l1": [], "ab_norm": [], "active_rank": []}
    for step in range(steps + 1):
        loss = F.mse_loss(model(task.x_train), task.y_train)
        if record_every and (step % record_every == 0 or step == steps):
            history["step"].append(step)
            history["loss"].append(loss.item())
            for k, v in _snapshot(layer).items():
                history[k].append(v)
        if step == steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()  # scored as it would be used: adapter dropout off
    with torch.no_grad():
        test_mse = F.mse_loss(model(task.x_test), task.y_test).item()
        base_mse = F.mse_loss(task.base(task.x_test), task.y_test).item()
    rank = _snapshot(layer)["active_rank"]
    return PlantedFit(model, task, test_mse, base_mse, rank, history if record_every else {})
