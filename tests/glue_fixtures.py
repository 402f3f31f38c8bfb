"""Tiny GLUE files in the exact original layout of each task, for tests (test-only; no real data).

Written independently of ``soralab.experiments.glue``: this module knows each file layout itself and returns the rows it
expects a correct loader to produce, so loader tests are not circular.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from soralab.experiments.models import TINY

_PAIR = ("sentence1", "sentence2")
_NLI = ("entailment", "not_entailment")
_MNLI_HEAD = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
              "sentence1_parse", "sentence2_parse", "sentence1", "sentence2"]

# task: (folder, HF text fields, label strings in the file (position = class id; None = STS-B score), header)
LAYOUTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...] | None, list[str] | None]] = {
    "cola": ("CoLA", ("sentence",), ("0", "1"), None),
    "sst2": ("SST-2", ("sentence",), ("0", "1"), ["sentence", "label"]),
    "mrpc": ("MRPC", _PAIR, ("0", "1"), ["\ufeffQuality", "#1 ID", "#2 ID", "#1 String", "#2 String"]),
    "qqp": ("QQP", ("question1", "question2"), ("0", "1"),
            ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]),
    "stsb": ("STS-B", _PAIR, None, ["index", "genre", "filename", "year", "old_index", "source1", "source2",
                                    "sentence1", "sentence2", "score"]),
    "mnli": ("MNLI", ("premise", "hypothesis"), ("entailment", "neutral", "contradiction"), None),  # per file
    "qnli": ("QNLI", ("question", "sentence"), _NLI, ["index", "question", "sentence", "label"]),
    "rte": ("RTE", _PAIR, _NLI, ["index", "sentence1", "sentence2", "label"]),
    "wnli": ("WNLI", _PAIR, ("0", "1"), ["index", "sentence1", "sentence2", "label"]),
}
STSB_SCORES = ("5.000", "3", "1.53333333333333", "0.000", "2.5", "4.750")

# Texts that default CSV quoting would mangle: quotes at a field start, unbalanced quotes, plus non-ASCII.
SPECIAL_TEXTS = ('"quoted" start of a field', 'an unbalanced " quote inside', "it 's a café , naïve",
                 '"lonely opening quote')


def text(split: str, i: int, j: int) -> str:
    """Text number ``j`` of row ``i`` in file ``split`` (rows 0-3 use the tricky SPECIAL_TEXTS)."""
    base = SPECIAL_TEXTS[(i + j) % len(SPECIAL_TEXTS)] if i < len(SPECIAL_TEXTS) else f"plain text {j}"
    return f"{base} ({split} {i}.{j})"


def _row(task: str, stem: str, i: int, texts: list[str], raw: str, other: str) -> list[str]:
    """One line's fields in the original GLUE layout."""
    if task == "cola":
        return ["gj04", raw, "" if raw == "1" else "*", texts[0]]
    if task == "sst2":
        return [texts[0], raw]
    if task == "mrpc":
        return [raw, str(1000 + i), str(2000 + i), *texts]
    if task == "qqp":
        return [str(i), str(2 * i + 1), str(2 * i + 2), *texts, raw]
    if task == "stsb":
        return [str(i), "main-captions", "MSRvid", "2012test", f"{i:04d}", "none", "none", *texts, raw]
    if task == "mnli":  # label1 (and label5) disagree with gold_label on dev, as real annotator labels can
        labels = [other, raw, raw, raw, other] if stem.startswith("dev") else [raw]
        parses = [f"( {t} )" for t in texts]
        return [str(i), str(100 + i), f"{100 + i}e", "fiction", *parses, *parses, *texts, *labels, raw]
    return [str(i), *texts, raw]  # qnli, rte, wnli


def write_glue_fixture(root: str | Path, task: str, n_train: int = 8, n_dev: int = 6,
                       seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """Write ``<root>/<Folder>/train.tsv`` and the dev file(s) for ``task``.

    Returns the expected loaded rows per GLUE-protocol split ("train", "validation", or for MNLI
    "validation_matched"/"validation_mismatched"): HF text fields, ``label`` (class id, or float score for
    STS-B) and ``idx``. ``seed`` draws the labels.
    """
    folder, fields, vocab, header = LAYOUTS[task]
    rng = random.Random(seed)
    stems = ["train", *(["dev_matched", "dev_mismatched"] if task == "mnli" else ["dev"])]
    out_dir = Path(root) / folder
    out_dir.mkdir(parents=True, exist_ok=True)
    expected: dict[str, list[dict[str, Any]]] = {}
    for stem in stems:
        n = n_train if stem == "train" else n_dev
        file_header = header
        if task == "mnli":
            file_header = _MNLI_HEAD + (["label1", "label2", "label3", "label4", "label5"]
                                        if stem.startswith("dev") else ["label1"]) + ["gold_label"]
        lines = [] if file_header is None else ["\t".join(file_header)]
        rows = []
        for i in range(n):
            texts = [text(stem, i, j) + (" " if task == "sst2" else "") for j in range(len(fields))]
            if vocab is None:
                raw = rng.choice(STSB_SCORES)
                label: int | float = float(raw)
                other = raw
            else:
                label = rng.randrange(len(vocab))
                raw, other = vocab[label], vocab[(label + 1) % len(vocab)]
            lines.append("\t".join(_row(task, stem, i, texts, raw, other)))
            rows.append({**dict(zip(fields, texts, strict=True)), "label": label, "idx": i})
        # CoLA's dev.tsv has no newline after its last line, like the GLUE file; all others end in "\n".
        ending = "" if (task == "cola" and stem == "dev") else "\n"
        with open(out_dir / f"{stem}.tsv", "w", encoding="utf-8", newline="") as fh:
            fh.write("\n".join(lines) + ending)
        expected["train" if stem == "train" else "validation" + stem.removeprefix("dev")] = rows
    return expected


# Sum of (in + out) over the six adapted linears of every block of soralab's tiny BERT (``models.TINY``): four
# hidden x hidden layers and two hidden <-> FFN layers per block. A rank-r LoRA on all of them has r times this.
TINY_BERT_IN_PLUS_OUT = TINY["layers"] * (4 * (TINY["hidden"] * 2) + 2 * (TINY["hidden"] + TINY["ffn"]))
