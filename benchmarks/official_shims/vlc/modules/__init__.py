# clip_model.py imports `from vlc.modules import objectives` (the METER-era package name).
from scl.modules import objectives  # noqa: F401
