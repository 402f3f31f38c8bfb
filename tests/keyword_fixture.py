"""A small learnable SST-2-layout data set for the notebook twins (test-only).

``glue_fixtures.write_glue_fixture`` draws random labels, so nothing can learn it and a trained tiny model's
adapters end up barely mattering. Here the label is given by one sentiment word among filler words, so a tiny
model with adapters learns it in a few epochs and its adapters carry real signal: output-identity checks
(prune, merge, export, reload) are then meaningful.
"""

from __future__ import annotations

import random
from pathlib import Path

FILLER = "the a film movie story plot actors scene was is and it this of".split()
POSITIVE, NEGATIVE = ("great", "wonderful", "superb"), ("awful", "boring", "terrible")


def write_keyword_sst2(root: str | Path, n_train: int = 160, n_dev: int = 64, seed: int = 0) -> dict[str, list]:
    """Write ``<root>/SST-2/{train,dev}.tsv`` (``sentence<TAB>label`` with a header, as in GLUE).

    Returns ``{"train": [(sentence, label), ...], "validation": [...]}``.
    """
    rng = random.Random(seed)
    folder = Path(root) / "SST-2"
    folder.mkdir(parents=True, exist_ok=True)
    rows: dict[str, list] = {}
    for split, stem, n in (("train", "train", n_train), ("validation", "dev", n_dev)):
        rows[split] = []
        for _ in range(n):
            label = rng.randrange(2)
            words = [rng.choice(FILLER) for _ in range(6)]
            words.insert(rng.randrange(7), rng.choice(POSITIVE if label else NEGATIVE))
            rows[split].append((" ".join(words) + " ", label))
        lines = ["sentence\tlabel"] + [f"{s}\t{y}" for s, y in rows[split]]
        (folder / f"{stem}.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return rows
