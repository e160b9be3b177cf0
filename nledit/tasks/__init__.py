"""lm-eval task templates that read local files: ``nledit_mmlu`` and ``nledit_wikitext``.

The YAML files here are templates: ``${...}`` fields stand for absolute paths on the machine that
runs the evaluation. ``nledit.lmeval.tasks.prepare_tasks`` fills them in and writes a folder to
pass to ``lm_eval --include_path``. ``wikitext_results.py`` is copied beside the WikiText task so
that the written folder needs nothing but lm-eval.
"""
