"""Tiny shared primitives every floor may use (atomic writes, JSON lines). Imports nothing from
sclbench but `sclbench.errors` (itself a leaf)."""
