"""Per-document scores of the ``nledit_wikitext`` task (lm-eval ``process_results`` hook).

This file is copied unchanged beside ``nledit_wikitext.yaml`` and imported by lm-eval from there,
so it must stay self-contained. The model scores the detokenised page (``text``); words and bytes
are counted on the original WikiText page (``words``, ``bytes``, written by nledit), so that word
perplexity is normalised by the WikiText token count whatever the detokeniser does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def process_results(
    doc: Mapping[str, Any], results: Sequence[float]
) -> dict[str, tuple[float, int]]:
    """Pair the document's total log-likelihood with the counts each metric divides by."""
    (loglikelihood,) = results
    words = int(doc["words"])
    n_bytes = int(doc["bytes"])
    return {
        "word_perplexity": (loglikelihood, words),
        "byte_perplexity": (loglikelihood, n_bytes),
        "bits_per_byte": (loglikelihood, n_bytes),
    }
