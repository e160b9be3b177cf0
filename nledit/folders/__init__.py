"""Folders nledit writes: checked before any model work, written atomically, and removed only
when nledit can prove it created them."""
