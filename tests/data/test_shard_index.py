"""Shards are held to their index: a shard cut short or holding fewer samples is one error naming it,
on every path that reads shards (pair listing, data check, the training stream, img2dataset scans)."""

import io
import json
import tarfile

import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from sclbench.cli import main
from sclbench.data import shards as S
from sclbench.data.check import check_layout
from sclbench.data.records import CaptionRecord, ImageSource
from sclbench.data.streaming import Corpus, StreamingBatches
from sclbench.errors import DataError


def _png(i: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (i, 2 * i, 3 * i)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def shard_dir(tmp_path):
    records = [
        CaptionRecord(ImageSource(data=_png(i)), f"id{i}", [f"a red thing {i}", f"thing {i}"], "train")
        for i in range(8)
    ]
    S.write_shards(records, tmp_path / "shards", "toy", shard_size=4)
    return tmp_path / "shards"


def _first(folder):
    return min(folder.glob("*.tar"))


def _cut_inside_a_member(folder):
    tar = _first(folder)
    tar.write_bytes(tar.read_bytes()[:2560])  # ends in the middle of the second member's data
    return tar


def _drop_last_sample(folder):
    """A valid, shorter tar: what a copy cut at a member boundary (or a replaced shard) looks like."""
    tar = _first(folder)
    with tarfile.open(tar) as src:
        members = [(m, src.extractfile(m).read()) for m in src.getmembers()]
    last = members[-1][0].name.split(".")[0]
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.USTAR_FORMAT) as dst:
        for member, data in members:
            if member.name.split(".")[0] != last:
                dst.addfile(member, io.BytesIO(data))
    tar.write_bytes(out.getvalue())
    return tar


DAMAGE = {
    "cut_inside_a_member": (_cut_inside_a_member, "cannot be read after"),
    "fewer_samples_than_index": (_drop_last_sample, "holds 3 samples but its index.json says 4"),
}


class _Digest:
    def __call__(self, source):
        return torch.zeros(1, 3, 4, 4)


@pytest.mark.parametrize("defect", DAMAGE)
def test_pairs_and_check_refuse_a_short_shard(shard_dir, defect):
    damage, message = DAMAGE[defect]
    tar = damage(shard_dir)
    with pytest.raises(DataError, match=message) as err:
        S.read_pairs(shard_dir)
    assert str(tar) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DataError, match=message):
        S.check_shards(shard_dir)
    report = check_layout("pretrain", shard_dir.parent)  # a shard folder under a pretrain root
    assert not report.ok and any(str(tar) in p for p in report.problems), report.render()


@pytest.mark.parametrize("defect", DAMAGE)
def test_training_stream_refuses_a_short_shard(shard_dir, defect, synth_tokenizer):
    damage, message = DAMAGE[defect]
    tar = damage(shard_dir)
    corpus = Corpus("toy", "image", index=S.read_index(shard_dir))
    stream = StreamingBatches(
        [corpus],
        {"image": _Digest()},
        synth_tokenizer,
        8,
        {"image": 2},
        rank=0,
        world=1,
        shuffle_buffer=4,
        negative_pool=2,
    )
    with pytest.raises(DataError, match=message) as err:
        list(DataLoader(stream, batch_size=None, num_workers=0))
    assert str(tar) in str(err.value)


def test_intact_shards_stream_every_pair(shard_dir, synth_tokenizer):
    assert len(S.read_pairs(shard_dir)) == 16
    assert S.check_shards(shard_dir).samples == 8
    assert check_layout("pretrain", shard_dir.parent).ok


def test_img2dataset_shard_cut_short_names_it(shard_dir):
    (shard_dir / S.INDEX_NAME).unlink()  # no index: the shards are scanned
    tar = _cut_inside_a_member(shard_dir)
    with pytest.raises(DataError, match="cannot be read after") as err:
        S.read_index(shard_dir)
    assert str(tar) in str(err.value)


@pytest.mark.parametrize(
    "edit,message",
    [
        (lambda doc: doc["shards"][0].update(samples=-1), "samples"),
        (lambda doc: doc["shards"][0].update(samples="4"), "should be int"),
        (lambda doc: doc["shards"][0].update(url="gone.tar"), "gone.tar is missing"),
        (lambda doc: doc.update(shards=[]), "holds no shards"),
        (lambda doc: doc.update(kind="audio"), "not a shard index"),
    ],
)
def test_index_is_checked(shard_dir, edit, message):
    path = shard_dir / S.INDEX_NAME
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=message):
        S.read_index(shard_dir)


def test_index_with_repeated_key_or_bom(shard_dir):
    path = shard_dir / S.INDEX_NAME
    text = path.read_text()
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # a BOM is read through
    assert S.read_index(shard_dir).samples == 8
    path.write_text(text.replace('"kind": "image",', '"kind": "image", "kind": "video",'))
    with pytest.raises(DataError, match="key 'kind' occurs twice"):
        S.read_index(shard_dir)


def test_member_text_errors_name_the_member():
    raw = {"__key__": "k1", "jpg": b"x", "txt": b"\xff\xfe bad"}
    with pytest.raises(DataError, match="member k1.txt: bytes that are not UTF-8"):
        S.captions_of(raw, "s.tar")
    with pytest.raises(DataError, match="has no caption"):
        S.captions_of({"__key__": "k2", "jpg": b"x", "txt": b"  "}, "s.tar")
    with pytest.raises(DataError, match="'caption' occurs twice"):
        S.captions_of({"__key__": "k3", "json": b'{"caption": "a", "caption": "b"}'}, "s.tar")


def test_cli_data_check_exit_code(shard_dir, capsys):
    _drop_last_sample(shard_dir)
    assert main(["data", "check", "pretrain", "--data-root", str(shard_dir.parent)]) == 1
    assert "holds 3 samples" in capsys.readouterr().out
