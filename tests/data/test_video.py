"""Video decoding (decord), frame folders, frame sampling, clip transforms."""

import decord
import pytest
import torch
from PIL import Image

from sclbench.data.formats import read_lsmdc, read_msrvtt
from sclbench.data.synthetic import FRAMES
from sclbench.data.transforms import ClipTransform, build_transform
from sclbench.data.video import count_frames, read_clip, sample_frame_indices
from sclbench.errors import DataError


def test_generated_video_decodes_with_decord(synth_root):
    video = read_msrvtt(synth_root / "msrvtt", "test")[0].video
    reader = decord.VideoReader(str(video))
    assert len(reader) == FRAMES and reader[0].shape == (64, 64, 3)
    assert count_frames(video) == FRAMES


def test_uniform_matches_official():
    assert sample_frame_indices(100, 4, "uniform") == [0, 33, 66, 99]
    assert sample_frame_indices(2, 4, "uniform") == [0, 0, 0, 1]  # short clip: repeats
    assert sample_frame_indices(1, 4, "uniform") == [0, 0, 0, 0]


def test_random_one_frame_per_segment():
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        idx = sample_frame_indices(100, 4, "random", g)
        assert all(25 * k <= i < 25 * (k + 1) for k, i in enumerate(idx))
    short = sample_frame_indices(3, 4, "random", g)
    assert len(short) == 4 and all(0 <= i < 3 for i in short)
    a = sample_frame_indices(50, 4, "random", torch.Generator().manual_seed(1))
    assert a == sample_frame_indices(50, 4, "random", torch.Generator().manual_seed(1))
    with pytest.raises(ValueError):
        sample_frame_indices(10, 4, "middle")


def test_frame_folders_and_video_files(synth_root):
    frames = read_lsmdc(synth_root / "lsmdc", "train")[0]
    video = read_lsmdc(synth_root / "lsmdc", "train", media="video")[0]
    assert frames.video.is_dir() and count_frames(frames.video) == FRAMES // 2
    for clip in (frames.video, video.video):
        out = read_clip(clip, 4)
        assert len(out) == 4 and all(isinstance(f, Image.Image) and f.size == (64, 64) for f in out)
    assert len(read_clip(frames.video, 12)) == 12  # more frames asked than the folder holds


def test_corrupt_and_missing_video(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(DataError, match="corrupt video .*bad.mp4"):
        read_clip(bad, 4)
    with pytest.raises(DataError, match="missing video .*nothere.mp4"):
        read_clip(tmp_path / "nothere.mp4", 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .jpg"):
        read_clip(tmp_path / "empty", 4)


@pytest.mark.parametrize("name", ["finetune_train", "pretrain_train", "eval"])
def test_clip_transform_same_params_for_every_frame(name):
    frame = Image.effect_noise((80, 60), 64).convert("RGB")
    clip = ClipTransform(build_transform(name, 32))([frame] * 3)
    assert clip.shape == (3, 3, 32, 32)
    assert torch.equal(clip[0], clip[1]) and torch.equal(clip[1], clip[2])
    if name != "eval":  # and the random choice does change between clips
        torch.manual_seed(0)
        clips = [ClipTransform(build_transform(name, 32))([frame])[0] for _ in range(4)]
        assert any(not torch.equal(clips[0], c) for c in clips[1:])
