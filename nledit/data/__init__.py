"""Concept data: data sets and local files read strictly, split into demonstrations,
fitting and evaluation examples; prompts, token-level concepts and general text."""
