"""The commands of the `nledit` command line, one module (or a few) per command.

Each command is a thin shell over the pipeline stages in ``nledit/`` (recipe, data, models,
collect, prepare, saliency, ranges, gate, evaluate, export, hub) and the Python API in
``nledit/api.py``; ``nledit/cli.py`` only parses arguments and reports errors.
"""
