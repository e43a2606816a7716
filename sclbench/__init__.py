"""sclbench: the SCL vision-language model as a usable benchmark suite."""

__version__ = "0.1.0"
