"""Video decoding through decord and through PyAV: same frame count, same frame indices, pixels within
codec tolerance; PyAV is used when decord does not import. Videos are generated here with PyAV."""

import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from sclbench.data import video
from sclbench.data.synthetic import write_mp4
from sclbench.data.video import count_frames, read_clip, video_backend
from sclbench.errors import ConfigError, DataError

N = 23  # an odd length, so uniform indices are not a trivial pattern
TOLERANCE = 6  # max |difference| per channel between the two decoders (YUV->RGB rounding)


def _frame(t: int) -> Image.Image:
    """Frame t has red level 10*t everywhere: its index can be read back from any decoded frame."""
    a = np.zeros((48, 64, 3), np.uint8)
    a[..., 0] = 10 * t
    a[..., 2] = np.arange(64, dtype=np.uint8) * 3
    a[8:24, 2 * t : 2 * t + 12, 1] = 200
    return Image.fromarray(a)


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_mp4([_frame(t) for t in range(N)], path)
    return path


def _index_of(img: Image.Image) -> int:
    return int(round(np.asarray(img)[..., 0].mean() / 10))


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_each_backend_counts_and_indexes_frames(clip, backend):
    assert count_frames(clip, backend=backend) == N
    frames = read_clip(clip, 5, backend=backend)
    assert [_index_of(f) for f in frames] == [0, 5, 11, 16, 22]  # linspace(0, 22, 5) truncated
    assert all(f.mode == "RGB" and f.size == (64, 48) for f in frames)
    original = [np.asarray(_frame(i), dtype=int) for i in (0, 5, 11, 16, 22)]
    assert max(np.abs(np.asarray(f, dtype=int) - o).mean() for f, o in zip(frames, original)) < 3


@pytest.mark.parametrize("mode,num", [("uniform", 4), ("uniform", 30), ("random", 6)])
def test_backends_agree(clip, mode, num):
    a = read_clip(clip, num, mode, torch.Generator().manual_seed(3), backend="decord")
    b = read_clip(clip, num, mode, torch.Generator().manual_seed(3), backend="pyav")
    assert [_index_of(f) for f in a] == [_index_of(f) for f in b]
    assert len(a) == num
    diff = max(int(np.abs(np.asarray(x, dtype=int) - np.asarray(y, dtype=int)).max()) for x, y in zip(a, b))
    assert diff <= TOLERANCE


def test_pyav_when_decord_does_not_import(clip, monkeypatch):
    monkeypatch.delenv("SCLBENCH_VIDEO_BACKEND", raising=False)
    with monkeypatch.context() as m:
        m.setitem(sys.modules, "decord", None)  # `import decord` now raises ImportError
        video._decord_importable.cache_clear()
        try:
            assert video_backend() == "pyav"
            assert [_index_of(f) for f in read_clip(clip, 3)] == [0, 11, 22]
            assert count_frames(clip) == N
            with pytest.raises(ConfigError, match="decord is not installed"):
                video_backend("decord")
        finally:
            video._decord_importable.cache_clear()
    assert video_backend() == "decord"


def test_backend_option(monkeypatch):
    monkeypatch.setenv("SCLBENCH_VIDEO_BACKEND", "pyav")
    assert video_backend() == "pyav" and video_backend("decord") == "decord"
    monkeypatch.setenv("SCLBENCH_VIDEO_BACKEND", "opencv")
    with pytest.raises(ConfigError, match="unknown video backend 'opencv'"):
        video_backend()


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_bad_videos_name_the_file(tmp_path, clip, backend):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match=r"corrupt video .*bad\.mp4"):
        read_clip(bad, 4, backend=backend)
    with pytest.raises(DataError, match=r"missing video .*nothere\.mp4"):
        count_frames(tmp_path / "nothere.mp4", backend=backend)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:300])  # the header survives, the frames do not
    with pytest.raises(DataError, match=r"cut\.mp4"):
        read_clip(cut, 4, backend=backend)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(backend=st.sampled_from(["decord", "pyav"]), data=st.data())
def test_damaged_video_decodes_or_names_the_file(tmp_path_factory, clip, backend, data):
    raw = bytearray(clip.read_bytes())
    if data.draw(st.booleans()):
        raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
    else:
        for _ in range(data.draw(st.integers(1, 8))):
            raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    path = tmp_path_factory.mktemp("damaged") / "damaged.mp4"
    path.write_bytes(bytes(raw))
    try:
        frames = read_clip(path, 4, backend=backend)
    except DataError as err:
        assert "damaged.mp4" in str(err)
    else:
        assert len(frames) == 4 and all(f.mode == "RGB" for f in frames)
