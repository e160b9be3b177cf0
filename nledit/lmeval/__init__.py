"""lm-evaluation-harness on exported checkpoints: nledit's offline tasks, the runs and the
cached base results."""
