"""The patched checkpoint: writing it, the files it may hold, the checks that decide whether a
folder is one, its manifest and model card, and publishing it to the Hub."""
