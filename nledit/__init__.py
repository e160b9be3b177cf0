"""nledit: edit what a language model knows about a concept by gating neuron activation ranges."""

__version__ = "0.1.0"
