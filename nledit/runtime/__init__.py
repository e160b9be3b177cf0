"""The run-time: the range gate that runs inside a model (copied into every checkpoint as
``modeling_nledit.py``), its operators, and the ``Edit`` that installs it."""
