"""Every decoder failure (both backends) is one DataError naming the clip, and the skip option counts it."""

import io
import random
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sclbench.data.datasets import CaptionDataset, Visuals, drop_undecodable
from sclbench.data.records import SkipCounter, VideoRecord
from sclbench.data.synthetic import write_mp4
from sclbench.data.transforms import build_transform
from sclbench.data.video import _decord_importable, read_clip
from sclbench.errors import DataError

BACKENDS = ["pyav"] + (["decord"] if _decord_importable() else [])


@pytest.fixture(scope="module")
def good_mp4(tmp_path_factory):
    rng = np.random.RandomState(0)
    frames = [Image.fromarray((rng.rand(32, 32, 3) * 255).astype(np.uint8)) for _ in range(12)]
    path = tmp_path_factory.mktemp("clips") / "good.mp4"
    write_mp4(frames, path)
    return path.read_bytes()


def _wav() -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as out:  # a real media file with an audio stream and no video stream
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 800)
    return buf.getvalue()


DEFECTS = {
    "zero_bytes": lambda good: b"",
    "truncated": lambda good: good[: len(good) // 2],
    "header_only": lambda good: good[:64],
    "garbage": lambda good: random.Random(0).randbytes(4000),
    "corrupt_mid_stream": lambda good: (
        good[: len(good) // 2] + random.Random(1).randbytes(len(good) // 4) + good[3 * len(good) // 4 :]
    ),
    "unsupported_codec": lambda good: good.replace(b"avc1", b"zzzz"),
    "no_video_stream": lambda good: _wav(),
}


def _damaged(tmp_path, good_mp4, defect):
    path = tmp_path / f"{defect}.mp4"
    if defect == "directory":
        path.mkdir()
    else:
        path.write_bytes(DEFECTS[defect](good_mp4))
    return path


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("defect", [*DEFECTS, "directory"])
def test_every_decoder_failure_is_one_error_naming_the_clip(tmp_path, good_mp4, backend, defect):
    path = _damaged(tmp_path, good_mp4, defect)
    with pytest.raises(DataError) as err:
        read_clip(path, 4, backend=backend)
    message = str(err.value)
    assert str(path) in message and "\n" not in message and "Traceback" not in message


@pytest.mark.parametrize("backend", BACKENDS)
def test_good_clip_still_reads(tmp_path, good_mp4, backend):
    path = tmp_path / "good.mp4"
    path.write_bytes(good_mp4)
    assert [f.size for f in read_clip(path, 4, backend=backend)] == [(32, 32)] * 4


@pytest.mark.parametrize("backend", BACKENDS)
def test_skip_option_counts_every_failure(tmp_path, good_mp4, backend, monkeypatch, synth_tokenizer):
    monkeypatch.setenv("SCLBENCH_VIDEO_BACKEND", backend)
    good = tmp_path / "good.mp4"
    good.write_bytes(good_mp4)
    bad = [_damaged(tmp_path, good_mp4, d) for d in [*DEFECTS, "directory"]]
    records = [VideoRecord(p, p.stem, ["a clip"], "test") for p in [good, *bad]]
    visuals = Visuals(build_transform("eval", 32), num_frames=2)
    skip = SkipCounter()
    assert drop_undecodable(records, visuals, skip) == records[:1]
    assert skip.counts == {"corrupt": len(bad)}
    dataset = CaptionDataset(records, visuals, synth_tokenizer, 8, per_caption=False, skip_corrupt=True)
    samples = [dataset[i] for i in range(len(dataset))]
    assert "image" in samples[0] and all("skipped" in s for s in samples[1:])
    strict = CaptionDataset(records, visuals, synth_tokenizer, 8, per_caption=False)
    with pytest.raises(DataError, match="truncated.mp4|zero_bytes.mp4"):
        [strict[i] for i in range(len(strict))]


def test_worker_errors_keep_one_line(tmp_path, good_mp4, synth_tokenizer):
    """A DataError raised in a dataloader worker reaches the CLI as its own message, not torch's
    wrapper with the worker's traceback."""
    from torch.utils.data import DataLoader

    path = _damaged(tmp_path, good_mp4, "truncated")
    dataset = CaptionDataset(
        [VideoRecord(path, "v", ["a"], "test")],
        Visuals(build_transform("eval", 32), 2),
        synth_tokenizer,
        8,
        per_caption=False,
    )
    with pytest.raises(DataError) as err:
        list(DataLoader(dataset, num_workers=1, collate_fn=lambda b: b))
    assert str(err.value).startswith(f"corrupt video {path}") and "\n" not in str(err.value)


@pytest.mark.parametrize("task,media", [("f30k", "flickr30k-images"), ("msrvtt", "videos/all")])
def test_retrieval_evaluation_skips_and_counts_undecodable_media(synth_root, tmp_path, task, media):
    """A retrieval gallery is encoded whole: under the skip option an undecodable image or clip is
    left out and counted; without it, one error naming the file."""
    import shutil

    from sclbench.app import jobs

    root = tmp_path / task
    shutil.copytree(synth_root / task, root, symlinks=True)
    split = "test"
    records = jobs.get_task(task, [], data_root=str(root)).records(split)
    victim = Path(str(getattr(records[1], "video", None) or records[1].image.path))
    victim.write_bytes(victim.read_bytes()[:120])
    task_skip, loaded = jobs.prepare(
        task, None, str(root), [], preset="tiny", tokenizer=str(synth_root / "tokenizer"), skip_corrupt=True
    )
    result = task_skip.evaluate(loaded.model.eval(), split, batch_size=8)
    assert result.skipped["total"] == 1 and result.protocol["num_images"] == len(records) - 1
    strict, loaded = jobs.prepare(task, None, str(root), [], preset="tiny", tokenizer=str(synth_root / "tokenizer"))
    with pytest.raises(DataError, match=str(victim.name)):
        strict.evaluate(loaded.model.eval(), split, batch_size=8)


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
