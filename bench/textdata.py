"""A synthetic text corpus (offline, reproducible) for the text model's benchmark."""

from __future__ import annotations

import random


def make_corpus(
    classes: int = 20, docs_per_class: int = 100, words: int = 100, vocab: int = 5000, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Documents of `words` words; each class favours its own slice of the vocabulary."""
    rng = random.Random(seed)
    lexicon = [f"w{i:04d}" for i in range(vocab)]
    texts, labels = [], []
    share = vocab // classes
    for c in range(classes):
        own = lexicon[c * share : (c + 1) * share]
        for _ in range(docs_per_class):
            # 30% topical words, 70% drawn from the whole vocabulary, like real topic text.
            doc = [rng.choice(own) if rng.random() < 0.3 else rng.choice(lexicon) for _ in range(words)]
            texts.append(" ".join(doc))
            labels.append(f"topic{c:02d}")
    return texts, labels


def write_csv(path, texts: list[str], labels: list[str]) -> None:
    """Write the corpus as a CSV with `text` and `label` columns."""
    import csv

    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
