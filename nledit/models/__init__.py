"""Resolving, loading and running the base model: Hub ids, local folders, GGUF files and
offline wheels; where each family keeps its layers; batch sizes and threads."""
