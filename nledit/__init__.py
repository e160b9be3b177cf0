"""nledit: edit what a language model knows about a concept by gating neuron activation ranges."""

from .version import __version__

__all__ = ["__version__"]
