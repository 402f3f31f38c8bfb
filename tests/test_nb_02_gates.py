"""Twin of notebooks/02_gates_and_the_proximal_step.ipynb: the same claims, on the planted task at smoke size."""

import itertools

import pytest
import torch

import soralab
from soralab.optim import official_threshold_
from soralab.teaching.planted import fit_planted, planted_low_rank


def sora(r_max):
    return soralab.SoRAConfig(r=r_max, lora_alpha=r_max, target_modules=["0"])


def toy_runs(steps, c=(1.5, -0.8, 0.3, -0.1, 0.05), xi=0.5, lr=0.1):
    """Subgradient and proximal iterates on 0.5 |g - c|^2 + xi |g|_1 (the notebook's toy problem)."""
    c = torch.tensor(c)
    g_sub, g_prox = torch.ones_like(c), torch.ones_like(c)
    sub, prox = [g_sub], [g_prox]
    for _ in range(steps):
        g_sub = g_sub - lr * (g_sub - c + xi * torch.sign(g_sub))
        g_prox = soralab.soft_threshold(g_prox - lr * (g_prox - c), lr * xi)
        sub.append(g_sub)
        prox.append(g_prox)
    return c, torch.stack(sub), torch.stack(prox)


@pytest.mark.parametrize("steps", [150, 400])
def test_subgradient_never_hits_zero_but_the_proximal_step_does(steps):
    c, sub, prox = toy_runs(steps)
    xi, lr = 0.5, 0.1
    zero = c.abs() <= xi
    assert (sub == 0).sum() == 0
    flips = (torch.diff(torch.sign(sub[-20:, zero]), dim=0) != 0).sum(dim=0)
    assert (flips > 0).all()  # oscillating around zero ...
    assert sub[-1, zero].abs().max() < 2 * lr * xi  # ... with an amplitude of about lr * xi
    assert (prox[-1] == 0).sum() == zero.sum() == 3
    solution = soralab.soft_threshold(c, xi)
    assert torch.allclose(prox[-1], solution, atol=1e-6)

    def objective(g):
        return 0.5 * (g - c).pow(2).sum() + xi * g.abs().sum()

    assert objective(prox[-1]) <= objective(sub[-1])


def test_band_quirk_on_concrete_values():
    t = 0.1
    x = torch.tensor([0.05, 0.15, 0.19, 0.25, 0.5, -0.15, -0.3])
    correct = soralab.soft_threshold(x, t)
    official = official_threshold_(x.clone(), t)
    assert correct[1].item() == pytest.approx(0.05) and official[1].item() == 0.0
    assert torch.allclose(correct, torch.tensor([0.0, 0.05, 0.09, 0.15, 0.4, -0.05, -0.2]))
    assert torch.allclose(official, torch.tensor([0.0, 0.0, 0.0, 0.15, 0.4, 0.0, -0.2]))


def test_paper_threshold_follows_lr_official_does_not():
    task = planted_low_rank(true_rank=3, seed=0)
    model = soralab.inject(task.model(), sora(8))
    lr, xi = 1e-2, 1.0
    paper = soralab.ProximalAdamW(soralab.param_groups(model, lr=lr, xi=xi), lr=lr)
    official = soralab.ProximalAdamW(soralab.param_groups(model, lr=lr, xi=lr * xi), lr=lr, prox="official")
    gp = [g for g in paper.param_groups if g["name"] == "gates"][0]
    go = [g for g in official.param_groups if g["name"] == "gates"][0]
    assert paper.threshold(gp) == pytest.approx(0.01) and official.threshold(go) == pytest.approx(0.01)
    for group in paper.param_groups + official.param_groups:
        group["lr"] = lr / 2
    assert paper.threshold(gp) == pytest.approx(0.005) and official.threshold(go) == pytest.approx(0.01)


def test_official_and_paper_modes_end_on_the_same_rank():
    kw = dict(steps=150, lr=1e-2, weight_decay=1.0)
    paper = fit_planted(sora(8), xi=1.0, **kw)
    official = fit_planted(sora(8), xi=1e-2, prox="official", **kw)
    assert paper.active_rank == official.active_rank


def test_smoke_grid_too_large_xi_kills_every_gate_and_ranks_fall_with_xi():
    ranks = [fit_planted(sora(8), steps=150, lr=1e-2, weight_decay=1.0, xi=xi).active_rank
             for xi in (0.5, 1.0, 2.0, 4.0)]
    assert ranks[-1] == 0
    assert all(a >= b for a, b in itertools.pairwise(ranks))


@pytest.mark.parametrize("r_max", [4, 8, 16])
def test_classroom_grid_xi_1_recovers_rank_3_for_every_r_max(r_max):
    """The notebook's classroom claim (400 steps); r_max=8 is also the known-good setting of test_planted.py."""
    fit = fit_planted(sora(r_max), steps=400, lr=1e-2, weight_decay=1.0, xi=1.0, seed=0)
    assert fit.active_rank == 3
    assert fit.relative_mse < 1e-2
    assert fit_planted(sora(r_max), steps=400, lr=1e-2, weight_decay=1.0, xi=4.0).active_rank == 0


def test_without_weight_decay_gates_shrink_while_a_and_b_grow():
    fits = {wd: fit_planted(sora(8), steps=150, lr=1e-2, weight_decay=wd, xi=1.0, record_every=50)
            for wd in (0.0, 1.0)}
    assert fits[0.0].history["gate_l1"][-1] < fits[1.0].history["gate_l1"][-1]
    assert fits[0.0].history["ab_norm"][-1] > 2 * fits[1.0].history["ab_norm"][-1]


def test_rescaling_gates_by_1_over_c_and_a_by_c_keeps_outputs_and_divides_the_l1_penalty():
    """The scale symmetry the notebook's weight-decay section starts from, on a trained known-good layer."""
    fit = fit_planted(sora(8), steps=150, lr=1e-2, weight_decay=1.0, xi=1.0)
    layer, x, c = fit.model[0], fit.task.x_test, 3.0
    with torch.no_grad():
        before, l1_before = fit.model(x), layer.gate.abs().sum().item()
        layer.gate.div_(c)
        layer.lora_A.mul_(c)
        after, l1_after = fit.model(x), layer.gate.abs().sum().item()
    assert l1_before > 0.1
    assert torch.allclose(after, before, atol=1e-5)
    assert l1_after == pytest.approx(l1_before / c, rel=1e-5)


def test_long_run_without_weight_decay_dodges_the_penalty_and_the_rank_moves():
    """The notebook's symmetry_steps=3200 comparison (same in every profile): without weight decay on A and B the
    gates end below a tenth of the decayed run's and ||A||*||B|| more than ten times larger, and the active rank
    keeps moving after step 400; with weight decay it stays at the planted 3."""
    fits = {wd: fit_planted(sora(8), steps=3200, lr=1e-2, weight_decay=wd, xi=1.0, record_every=50)
            for wd in (0.0, 1.0)}
    h0, h1 = fits[0.0].history, fits[1.0].history
    assert h0["gate_l1"][-1] < h1["gate_l1"][-1] / 10
    assert h0["ab_norm"][-1] > 10 * h1["ab_norm"][-1]
    at = h0["step"].index(400)
    assert set(h1["active_rank"][at:]) == {3}
    assert any(a != b for a, b in itertools.pairwise(h0["active_rank"][at:]))


def test_the_planted_rank_is_found_at_a_tuned_xi_only():
    """The classroom grid (400 steps): xi = 1 finds rank 3 for r_max 4, 8 and 16; xi = 0.25 keeps extra ranks,
    xi = 2 cuts a needed one at r_max = 4."""
    grid = {(r_max, xi): fit_planted(sora(r_max), steps=400, lr=1e-2, weight_decay=1.0, xi=xi).active_rank
            for r_max in (4, 8, 16) for xi in (0.25, 0.5, 1.0, 2.0)}
    found = [xi for xi in (0.25, 0.5, 1.0, 2.0) if all(grid[(r_max, xi)] == 3 for r_max in (4, 8, 16))]
    assert found == [1.0], grid
    assert grid[(16, 0.25)] > 3 and grid[(4, 2.0)] < 3, grid
