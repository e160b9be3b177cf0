"""What ``nledit.evaluate`` returns: the evaluation as plain data, with readable tables.

``Evaluation`` is a ``dict`` holding exactly ``EvalResult.to_dict()`` (so callers that index it,
compare it or ``json.dumps`` it keep working) whose ``repr`` is the terminal summary nledit
prints, with ``to_markdown()`` for the erasure and perplexity tables and ``to_pandas()`` for one
row per gate. The views show the evaluation as it was returned.
"""

from __future__ import annotations

from typing import Any

from .competence import line as competence_line
from .results import markdown_table, ppl_table, summary
from .rows import EvalResult


class Evaluation(dict):
    """The erasure table and perplexity of an edit, as a dict with table views."""

    def __init__(self, result: EvalResult) -> None:
        super().__init__(result.to_dict())
        self._result = result

    def __repr__(self) -> str:
        return summary(self._result)

    def to_markdown(self) -> str:
        """The erasure table (base values, each method's deltas with their intervals), the base
        model's competence and, when measured, the perplexity table, in Markdown."""
        comp = self._result.competence
        parts = [markdown_table(self._result)] + ([competence_line(comp)] if comp else [])
        ppl = ppl_table(self._result.perplexity, self._result.ppl_ci)
        return "\n\n".join(parts + ([ppl] if ppl else []))

    def _repr_markdown_(self) -> str:  # notebooks render the tables
        return self.to_markdown()

    def to_pandas(self) -> Any:
        """One row per gate (concept, method, Acc, Conf, CAcc, CConf, their base values and
        deltas, ...) as a ``pandas.DataFrame``; needs pandas installed."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("Evaluation.to_pandas needs pandas: pip install pandas") from err
        rows = [{k: v for k, v in r.items() if not isinstance(v, dict)} for r in self["erasure"]]
        return pd.DataFrame(rows)
