"""Reading a checkpoint registry file (`checkpoints.yaml`, or the one `$SCLBENCH_CHECKPOINTS` names) exactly.

The registry is user input as soon as the variable points at a file of one's own, so every way it can be
wrong is one CheckpointError naming the file and the entry: unreadable, not UTF-8, not YAML, not a mapping,
an entry that is not a mapping, a field of the wrong type, a misspelt field (a `sha265:` would otherwise
skip the digest check without a word), a name or file that would leave the cache folder, an alias to
nothing. The callers (hub.resolve, fetch, `ckpt list`, encoder inits) then read fields without guarding.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

import yaml

from sclbench.errors import CheckpointError

_TEXT = (str,)
_OPTIONAL_TEXT = (str, type(None))
# field -> the YAML types it may hold. An unquoted all-digit revision would load as an int: quote it.
FIELDS: dict[str, tuple[type, ...]] = {
    "alias": _TEXT,
    "description": _TEXT,
    "source": _TEXT,
    "repo": _TEXT,
    "file": _TEXT,
    "url": _TEXT,
    "revision": _OPTIONAL_TEXT,
    "sha256": _OPTIONAL_TEXT,
    "size_bytes": (int, type(None)),
    "format": _TEXT,
    "task": _TEXT,
    "preset": _TEXT,
    "kind": _TEXT,
    "encoder": _TEXT,
    "loader": _TEXT,
    "family": _TEXT,
    "image_size": (int,),
}
_NEEDS = {"huggingface": "repo", "url": "url"}  # source -> the field it downloads from


def read_registry(path: Path, origin: str = "") -> dict[str, dict[str, Any]]:
    """name -> entry of the registry file `path` (origin: how it was named, e.g. 'SCLBENCH_CHECKPOINTS=')."""
    where = f"{origin}{path}"
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as err:
        raise CheckpointError(f"cannot read the checkpoint registry {where}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise CheckpointError(
            f"checkpoint registry {where} is not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8 YAML"
        ) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        at = f", line {mark.line + 1}" if mark is not None else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise CheckpointError(f"checkpoint registry {where}{at} is not valid YAML: {problem}") from None
    except RecursionError:
        raise CheckpointError(f"checkpoint registry {where} is not valid YAML: nested too deeply") from None
    if data is None:  # an empty file: no names
        return {}
    if not isinstance(data, dict) or set(data) - {"checkpoints"}:
        got = type(data).__name__ if not isinstance(data, dict) else f"the keys {sorted(map(str, data))}"
        raise CheckpointError(
            f"checkpoint registry {where} must be a mapping with one key, 'checkpoints' (name -> entry); it holds {got}"
        )
    entries = data.get("checkpoints") or {}
    if not isinstance(entries, dict):
        raise CheckpointError(
            f"checkpoint registry {where}: 'checkpoints' must be a mapping of name -> entry, "
            f"not a {type(entries).__name__}"
        )
    for name, entry in entries.items():
        _check_entry(name, entry, where)
    for name, entry in entries.items():
        if "alias" in entry and entry["alias"] not in entries:
            raise CheckpointError(
                f"checkpoint registry {where}, entry {name!r}: alias {entry['alias']!r} is not a name in the registry"
            )
    return entries


def _check_entry(name: Any, entry: Any, where: str) -> None:
    if not isinstance(name, str) or not re.fullmatch(r"[\w][\w.+-]*", name):
        # The name is a folder of the cache (`$SCLBENCH_CACHE/NAME/FILE`) and a --ckpt value.
        raise CheckpointError(
            f"checkpoint registry {where}: the name {name!r} is not a plain name (letters, "
            "digits, '_', '-', '.', '+', not starting with a dot)"
        )
    at = f"checkpoint registry {where}, entry {name!r}"
    if not isinstance(entry, dict):
        raise CheckpointError(f"{at} must be a mapping of fields (source, repo, file, ...), not {type(entry).__name__}")
    for key, value in entry.items():
        if key not in FIELDS:
            near = difflib.get_close_matches(str(key), FIELDS, n=1)
            hint = f"; did you mean {near[0]}?" if near else f" (known: {', '.join(sorted(FIELDS))})"
            raise CheckpointError(f"{at}: unknown field {key!r}{hint}")
        if type(value) is bool or not isinstance(value, FIELDS[key]):  # bool is an int to Python, not to us
            wanted = " or ".join(
                "null" if t is type(None) else {"str": "text", "int": "a whole number"}[t.__name__] for t in FIELDS[key]
            )
            raise CheckpointError(
                f"{at}: field {key!r} must be {wanted}, not {type(value).__name__} {value!r}"
                + ("; quote it" if key == "revision" and isinstance(value, (int, float)) else "")
            )
    if "alias" in entry and len(entry) > 1:
        raise CheckpointError(f"{at}: an alias holds no other fields (it has {sorted(set(entry) - {'alias'})})")
    if entry.get("sha256") is not None and not re.fullmatch(r"[0-9a-f]{64}", entry["sha256"]):
        raise CheckpointError(f"{at}: sha256 {entry['sha256']!r} is not 64 lower-case hex digits")
    for key in ("size_bytes", "image_size"):
        if isinstance(entry.get(key), int) and entry[key] < (0 if key == "size_bytes" else 1):
            raise CheckpointError(f"{at}: {key} {entry[key]} is out of range")
    if "file" in entry:
        file = entry["file"]
        parts = PurePosixPath(file).parts
        # The file is stored at $SCLBENCH_CACHE/NAME/FILE: it must stay inside that folder.
        if (
            not file.strip()
            or PurePosixPath(file).is_absolute()
            or PureWindowsPath(file).is_absolute()
            or ".." in parts
            or "\\" in file
        ):
            raise CheckpointError(
                f"{at}: file {file!r} must be a relative file name inside the repository (no '..', no absolute path)"
            )
        needed = _NEEDS.get(entry.get("source", ""))
        if needed and needed not in entry:
            raise CheckpointError(f"{at}: source {entry['source']!r} needs the field {needed!r}")
