"""Tiny shared primitives every floor may use: atomic writes and output-target checks (io), the one safe
unpickler (safe_pickle), the run-folder lock (runlock), checked values (values), process pools
(processes), JSON lines, derived seeds and seeded calls (seeding), the text tokenizer shared by
model/ and data/ (tokenizer). Imports nothing from sclbench but `sclbench.errors` (itself a leaf) and
`common.values`."""
