"""Errors a user can cause (paths, formats, checkpoints, configs).

The CLI prints these as one clear line and exits with code 2; so are the OSErrors that come from the
user's files and disks (`is_user_os_error`). Everything else is a bug: the CLI says so in one line and
exits with code 1 (the traceback with SCLBENCH_DEBUG=1).
"""

from __future__ import annotations

import errno


class SCLBenchError(Exception):
    """A problem with the user's input: the message names the file or option and what to do."""

    def __init__(self, *args) -> None:
        # torch's DataLoader re-raises a worker's exception as type(err)("Caught X in DataLoader worker
        # process N.\nOriginal Traceback ...\nsclbench.errors.X: message"): keep the one-line message.
        if (
            len(args) == 1
            and isinstance(args[0], str)
            and args[0].startswith("Caught ")
            and "\nOriginal Traceback" in args[0]
        ):
            marker = f"{type(self).__module__}.{type(self).__qualname__}: "
            if marker in args[0]:
                args = (args[0].rsplit(marker, 1)[1].strip(),)
        super().__init__(*args)


class DataError(SCLBenchError):
    """A data file is missing, malformed or corrupt."""


class CheckpointError(SCLBenchError):
    """A checkpoint cannot be read or does not fit the model."""


class ConfigError(SCLBenchError):
    """A configuration value or task card is wrong."""


# OSErrors about the user's paths and disks, and what to do about each. Others (EBADF, EINVAL, ...) are
# more likely a bug in how sclbench calls the system, and are reported as one.
_USER_OS_ERRORS = {
    errno.ENOENT: "no such file or folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system; write somewhere else",
    errno.ENOTDIR: "a part of the path is a file where a folder is needed",
    errno.EISDIR: "is a folder where a file is needed",
    errno.EEXIST: "already exists",
    errno.ENOTEMPTY: "the folder is not empty",
    errno.ENOSPC: "no space left on the device; free some or write elsewhere",
    errno.EDQUOT: "disk quota exceeded; free some space or write elsewhere",
    errno.EFBIG: "file too large (the file system's or the process's file-size limit, `ulimit -f`)",
    errno.ENAMETOOLONG: "file name too long",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EMFILE: "too many open files (raise `ulimit -n`)",
    errno.ENFILE: "too many open files in the system",
    errno.EIO: "input/output error (a failing disk or network file system)",
    errno.EXDEV: "cannot move across file systems",
    errno.ETXTBSY: "the file is busy",
}


def is_user_os_error(err: OSError) -> bool:
    """Whether `err` is about the user's files or disks rather than a mistake in sclbench."""
    return err.errno in _USER_OS_ERRORS


def describe_os_error(err: OSError) -> str:
    """One line naming the path(s) and what is wrong, e.g. `cannot use /data/x: permission denied`."""
    reason = _USER_OS_ERRORS.get(err.errno) or err.strerror or str(err)
    paths = [str(p) for p in (err.filename, err.filename2) if p is not None]
    if not paths:  # a failed write on an open file carries no name (ENOSPC, EFBIG)
        return f"{reason} ([Errno {err.errno}] {err.strerror})"
    return f"cannot use {' -> '.join(paths)}: {reason}"
