"""Errors a user can cause (paths, formats, checkpoints, configs).

The CLI prints these as one clear line and exits with code 2; everything else is a bug and keeps its
traceback.
"""


class SCLBenchError(Exception):
    """A problem with the user's input: the message names the file or option and what to do."""


class DataError(SCLBenchError):
    """A data file is missing, malformed or corrupt."""


class CheckpointError(SCLBenchError):
    """A checkpoint cannot be read or does not fit the model."""


class ConfigError(SCLBenchError):
    """A configuration value or task card is wrong."""
