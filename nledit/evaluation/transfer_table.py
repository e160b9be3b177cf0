"""The transfer figure (``transfer.measure_transfer``'s result) as text: a Markdown table and
one sentence on where the edit stops acting. Plain data in, no model: the card and the result
files render it without importing the evaluation code."""

from __future__ import annotations

from typing import Any


def stops(transfer: dict[str, Any]) -> str:
    """One sentence: where the edit still acts and where it stops acting."""
    acting = [v["label"] for v in transfer.values() if any(r["acts"] for r in v["rows"])]
    idle = [v["label"] for v in transfer.values() if not any(r["acts"] for r in v["rows"])]
    said = [f"still acts under: {', '.join(acting)}"] if acting else []
    said += [f"stops acting under: {', '.join(idle)}"] if idle else []
    return "Outside its fitting prompt the edit " + "; it ".join(said) + "."


def table(transfer: dict[str, Any]) -> str:
    """The transfer figure as Markdown, with the sentence of ``stops``."""
    if not transfer:
        return ""
    head = ["setting", "concept", "base Acc", "ΔAcc [95 %]", "base Conf", "ΔConf [95 %]"]
    head += ["changed", "edit"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for v in transfer.values():
        for r in v["rows"]:
            cells = [v["label"], r["concept"], f"{r['base_acc']:.3f}", _ci(r, "d_acc")]
            why = r["why"] + ("" if r["assessable"] else " (the base cannot do this here)")
            cells += [f"{r['base_conf']:.4f}", _ci(r, "d_conf"), f"{r['changed']:.0%}", why]
            lines.append("| " + " | ".join(cells) + " |")
    note = (
        "The same held-out examples and gates outside the fitting prompt, uncalibrated. Conf "
        "is the gold label word's probability (under free text: as the model's next token "
        "after the bare text). changed: share of examples whose label probabilities the edit "
        "moves at all."
    )
    return "\n".join([note, "", *lines, "", stops(transfer)])


def _ci(r: dict[str, Any], key: str) -> str:
    lo, hi = (r.get("ci") or {}).get(key, (r[key], r[key]))
    return f"{r[key]:+.3f} [{lo:+.3f}, {hi:+.3f}]"
