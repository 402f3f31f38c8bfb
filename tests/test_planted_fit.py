"""soralab.teaching.planted.fit_planted against an independent reference: a plain training loop written here."""

import pytest
import torch

import soralab
from soralab.teaching.planted import fit_planted, planted_low_rank


def reference_loop(xi, weight_decay, steps, seed=0, r=8):
    """A plain full-batch ProximalAdamW loop on the planted task, written without fit_planted's helpers."""
    torch.manual_seed(seed)
    task = planted_low_rank(true_rank=3, seed=seed)
    model = soralab.inject(task.model(), soralab.SoRAConfig(r=r, lora_alpha=r, target_modules=["0"]))
    opt = soralab.ProximalAdamW(soralab.param_groups(model, lr=1e-2, weight_decay=weight_decay, xi=xi), lr=1e-2)
    for _ in range(steps):
        loss = torch.nn.functional.mse_loss(model(task.x_train), task.y_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


def test_same_run_as_the_reference_loop():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = reference_loop(xi=1.0, weight_decay=1.0, steps=40)
    finally:
        torch.set_num_threads(threads)
    fit = fit_planted(soralab.SoRAConfig(r=8, lora_alpha=8, target_modules=["0"]), steps=40, lr=1e-2,
                      weight_decay=1.0, xi=1.0, record_every=10)
    for (n, a), (m, b) in zip(ref.state_dict().items(), fit.model.state_dict().items(), strict=True):
        assert n == m and torch.equal(a, b), n
    assert torch.get_num_threads() == threads  # restored
    assert fit.history["step"] == [0, 10, 20, 30, 40]
    assert fit.history["active_rank"][0] == 8 and fit.history["ab_norm"][0] == 0.0  # B starts at 0
    assert fit.active_rank == fit.history["active_rank"][-1] == soralab.gate_report(fit.model).active_rank
    with torch.no_grad():
        want = torch.nn.functional.mse_loss(fit.model(fit.task.x_test), fit.task.y_test).item()
    assert fit.test_mse == pytest.approx(want) and fit.relative_mse == pytest.approx(want / fit.base_mse)


def test_lora_config_trains_plain_lora_without_history():
    fit = fit_planted(soralab.LoRAConfig(r=2, target_modules=["0"]), steps=3)
    assert isinstance(fit.model[0], soralab.LoRALinear) and fit.active_rank == 2 and fit.history == {}
    assert 0 < fit.relative_mse < 1.5


def test_zero_steps_is_the_base_map():
    fit = fit_planted(soralab.LoRAConfig(r=2, target_modules=["0"]), steps=0)
    assert fit.test_mse == pytest.approx(fit.base_mse)


def test_bad_inputs():
    with pytest.raises(ValueError, match="target_modules"):
        fit_planted(soralab.LoRAConfig(r=2, target_modules=["query"]), steps=1)
    with pytest.raises(ValueError, match="steps"):
        fit_planted(soralab.LoRAConfig(r=2, target_modules=["0"]), steps=-1)


def test_the_test_score_is_taken_with_adapter_dropout_off():
    """fit_planted scores the fitted model as it would be used: in eval mode, so adapter dropout does not inflate the
    test error (at lora_dropout 0.3 it tripled it)."""
    fit = fit_planted(soralab.LoRAConfig(r=4, lora_dropout=0.3, target_modules=["0"]), steps=30, lr=1e-2)
    assert not fit.model.training
    with torch.no_grad():
        want = torch.nn.functional.mse_loss(fit.model(fit.task.x_test), fit.task.y_test).item()
    assert fit.test_mse == pytest.approx(want)


@pytest.mark.parametrize("spectrum, match", [((3, 2, 1), None), ((1.0, 0.0, 0.5), "each > 0"),
                                             ((1.0, 2.0), "3 values")])
def test_a_spectrum_sets_the_planted_rank_exactly(spectrum, match):
    if match:
        with pytest.raises(ValueError, match=match):
            planted_low_rank(true_rank=3, spectrum=spectrum)
    else:  # whole numbers are singular values too
        task = planted_low_rank(true_rank=3, spectrum=spectrum)
        assert torch.linalg.matrix_rank(task.delta).item() == 3
