"""The sweep behind `nledit sweep`: its table, files and figure."""
