"""The top floor: the jobs a user runs (fine-tune, evaluate, pre-train, predict, the demo).

The only package that joins tasks, the model factory, the engine and results; the CLI calls nothing
else. Lower floors (model, data, engine, metrics, results) never import from here."""
