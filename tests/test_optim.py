"""The proximal step: closed form, the authors' band quirk, AdamW equivalence, schedules."""

import pytest
import torch

import soralab
from soralab.optim import official_threshold_
from soralab.teaching.planted import planted_low_rank


def test_soft_threshold_closed_form():
    t = 0.5
    x = torch.tensor([-2.0, -0.75, -0.5, -0.2, 0.0, 0.3, 0.5, 0.6, 0.99, 1.0, 3.0])
    want = torch.tensor([-1.5, -0.25, 0.0, 0.0, 0.0, 0.0, 0.0, 0.1, 0.49, 0.5, 2.5])
    assert torch.allclose(soralab.soft_threshold(x, t), want)


def test_soft_threshold_keeps_values_in_the_t_2t_band():
    t = 0.1
    x = torch.tensor([0.15, -0.15, 0.19, -0.11])  # all in (t, 2t) by magnitude
    out = soralab.soft_threshold(x, t)
    assert torch.allclose(out, torch.tensor([0.05, -0.05, 0.09, -0.01]))
    assert (out != 0).all()


def test_official_operator_zeroes_the_t_2t_band():
    t = 0.1
    x = torch.tensor([0.15, -0.15, 0.19, -0.11, 0.05, 0.25, -0.3])
    out = official_threshold_(x.clone(), t)
    # (t, 2t) values are zeroed; below t zeroed; above 2t shrunk by t like the true operator
    assert torch.allclose(out, torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.15, -0.2]))
    correct = soralab.soft_threshold(x, t)
    band = (x.abs() > t) & (x.abs() < 2 * t)
    assert (out[band] == 0).all() and (correct[band] != 0).all()
    assert torch.allclose(out[~band], correct[~band])


def _gate_model(seed=0):
    task = planted_low_rank(true_rank=2, seed=seed)
    torch.manual_seed(seed)
    model = soralab.inject(task.model(), soralab.SoRAConfig(r=4, target_modules=["0"], gate_init="randn"))
    return task, model


def _one_step(model, task, opt):
    loss = torch.nn.functional.mse_loss(model(task.x_train), task.y_train)
    opt.zero_grad()
    loss.backward()
    opt.step()


@pytest.mark.parametrize("prox", ["paper", "official"])
def test_optimizer_step_applies_the_operator_to_gate_groups_only(prox):
    task, model = _gate_model()
    gate = model[0].gate
    lr, xi = 0.1, 0.3
    opt = soralab.ProximalAdamW(soralab.param_groups(model, lr=lr, xi=xi), lr=lr, prox=prox)
    ref = torch.optim.AdamW(soralab.param_groups(model, lr=lr, xi=0.0), lr=lr)  # same state, no prox
    snapshot = {n: p.detach().clone() for n, p in model.named_parameters()}
    _one_step(model, task, ref)
    after_adam = {n: p.detach().clone() for n, p in model.named_parameters()}
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(snapshot[n])
    _one_step(model, task, opt)
    t = lr * xi if prox == "paper" else xi
    want = (soralab.soft_threshold(after_adam["0.gate"], t) if prox == "paper"
            else official_threshold_(after_adam["0.gate"].clone(), t))
    assert torch.equal(gate.detach(), want)
    assert torch.equal(model[0].lora_A.detach(), after_adam["0.lora_A"])


def test_paper_threshold_follows_the_scheduled_lr():
    task, model = _gate_model()
    opt = soralab.ProximalAdamW(soralab.param_groups(model, lr=1.0, xi=2.0), lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 0.5**step)
    gates = [g for g in opt.param_groups if g["name"] == "gates"][0]
    assert opt.threshold(gates) == pytest.approx(2.0)
    _one_step(model, task, opt)
    sched.step()
    assert opt.threshold(gates) == pytest.approx(1.0)
    official = soralab.ProximalAdamW(soralab.param_groups(model, lr=0.1, xi=2.0), lr=0.1, prox="official")
    assert official.threshold(official.param_groups[-1]) == 2.0


def test_xi_zero_equals_adamw_bit_for_bit():
    task, model_a = _gate_model(seed=1)
    _, model_b = _gate_model(seed=1)
    kw = dict(lr=0.05, weight_decay=0.1)
    opt_a = soralab.ProximalAdamW(soralab.param_groups(model_a, xi=0.0, **kw), lr=0.05)
    opt_b = torch.optim.AdamW(soralab.param_groups(model_b, xi=0.0, **kw), lr=0.05)
    for _ in range(5):
        _one_step(model_a, task, opt_a)
        _one_step(model_b, task, opt_b)
    for (na, pa), (nb, pb) in zip(model_a.named_parameters(), model_b.named_parameters(), strict=True):
        assert na == nb and torch.equal(pa, pb), na


def test_large_xi_kills_every_gate():
    task, model = _gate_model()
    opt = soralab.ProximalAdamW(soralab.param_groups(model, lr=0.01, xi=1e4), lr=0.01)
    _one_step(model, task, opt)
    assert torch.count_nonzero(model[0].gate) == 0
    assert soralab.gate_report(model).active_rank == 0


def test_param_groups_split_decay_gates_and_norms():
    from soralab.experiments.models import tiny_model

    model = soralab.inject(tiny_model("bert"), soralab.SoRAConfig(r=4, target_modules=["query", "value"],
                                                                  modules_to_save=["classifier"]))
    groups = {g["name"]: g for g in soralab.param_groups(model, lr=1e-3, weight_decay=0.1, xi=0.5, gate_lr=0.2)}
    assert set(groups) == {"decay", "no_decay", "gates"}
    assert groups["gates"]["lr"] == 0.2 and groups["gates"]["xi"] == 0.5 and groups["gates"]["weight_decay"] == 0
    assert len(groups["gates"]["params"]) == 4  # 2 layers x (query, value)
    decay_ids = {id(p) for p in groups["decay"]["params"]}
    assert id(model.classifier.weight) in decay_ids and id(model.classifier.bias) not in decay_ids
    assert all(p.ndim == 2 for p in groups["decay"]["params"])  # lora_A, lora_B, classifier.weight
    n_train = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert sum(p.numel() for g in groups.values() for p in g["params"]) == n_train


def test_gate_l1_is_mean_abs_gate():
    task, model = _gate_model()
    with torch.no_grad():
        model[0].gate.copy_(torch.tensor([1.0, -3.0, 0.0, 2.0]))
    assert soralab.gate_l1(model).item() == pytest.approx(1.5)


def test_l1_loss_option_equals_adding_lambda_gate_l1_to_the_loss():
    """The authors' extra loss term, as an optimizer option: same trajectory as the term in the loss."""
    from soralab.experiments.models import tiny_model

    lam, lr = 0.5, 0.05
    config = soralab.SoRAConfig(r=4, target_modules=["query", "value"])  # 2 blocks x 2 modules x 4 gates
    ids = torch.randint(0, 99, (3, 7), generator=torch.Generator().manual_seed(0))
    models, opts = [], []
    for l1_loss in (lam, 0.0):
        torch.manual_seed(0)
        models.append(soralab.inject(tiny_model("bert"), config).eval())  # eval: no dropout noise
        opts.append(soralab.ProximalAdamW(soralab.param_groups(models[-1], lr=lr, weight_decay=0.1, xi=0.2,
                                                               l1_loss=l1_loss), lr=lr))
    for _ in range(3):
        for model, opt, extra in zip(models, opts, (0.0, lam), strict=True):
            loss = model(input_ids=ids).logits.pow(2).sum() + extra * soralab.gate_l1(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
    with_option, in_loss = (dict(m.named_parameters()) for m in models)
    assert soralab.gate_l1(models[0]).item() > 0
    for name, value in with_option.items():
        assert torch.allclose(value, in_loss[name], atol=1e-6), name
    untouched = soralab.ProximalAdamW(soralab.param_groups(models[1], lr=lr, l1_loss=0.0), lr=lr)
    assert all(g["l1_loss"] == 0 for g in untouched.param_groups)
    with pytest.raises(ValueError, match="l1_loss must be >= 0"):
        soralab.param_groups(models[0], lr=lr, l1_loss=-1.0)


def test_xi_values_schedules():
    assert soralab.xi_values(1e-4, 1e-2, 3, "linear") == pytest.approx([1e-4, 0.00505, 1e-2])
    assert soralab.xi_values(1e-4, 1e-2, 3, "exp_linear") == pytest.approx([1e-4, 1e-3, 1e-2])
    log_lin = soralab.xi_values(0.0, 1.0, 3, "log_linear")
    assert log_lin[0] == pytest.approx(0.0) and log_lin[-1] == pytest.approx(1.0)
    assert log_lin[1] == pytest.approx(float(torch.log(torch.tensor((1 + torch.e) / 2))))
    assert log_lin[1] > 0.5  # denser near the end than linear


@pytest.mark.parametrize("bad", [
    lambda: soralab.ProximalAdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1, xi=-1.0),
    lambda: soralab.ProximalAdamW([torch.nn.Parameter(torch.zeros(2))], lr=0.1, prox="magic"),
    lambda: soralab.xi_values(0.1, 1.0, 3, "cubic"),
    lambda: soralab.xi_values(0.0, 1.0, 3, "exp_linear"),
    lambda: soralab.soft_threshold(torch.zeros(2), -0.1),
])
def test_bad_optimizer_inputs(bad):
    with pytest.raises(ValueError):
        bad()
