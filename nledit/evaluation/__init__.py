"""Evaluation: the concept-erasure table, base competence, bootstrap intervals, calibration,
perplexity, selectivity diagnostics, probes and generation side by side."""
