"""benchmarks/pooling.py's mean-pooling head: the finding in recipes_results.md (third round) rests on it honouring
the attention mask, so padding a batch must not change what the classifier sees."""

import torch
from benchmark_scripts import load_script

from soralab.experiments.models import tiny_model


def _pooling():
    return load_script("pooling")


def test_mean_pooler_is_the_masked_mean_and_ignores_padding():
    pooling = _pooling()
    for use_dense in (False, True):
        model = tiny_model("bert", seed=0).eval()
        pooling.use_mean_pooling(model, use_dense=use_dense)
        ids = torch.tensor([[2, 5, 7, 9]])
        padded = torch.tensor([[2, 5, 7, 9, 0, 0, 0]])
        mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0]])
        with torch.no_grad():
            short = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
            long = model(input_ids=padded, attention_mask=mask).logits
            hidden = model.bert(input_ids=ids).last_hidden_state  # the hook sets an all-ones mask here
            pooled = model.bert.pooler(hidden)
        torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)
        want = hidden.mean(1)
        if use_dense:
            want = torch.tanh(model.bert.pooler.dense(want))
        torch.testing.assert_close(pooled, want)
