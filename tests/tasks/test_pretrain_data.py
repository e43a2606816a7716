"""Pre-training data as the official code reads it: batches re-formed every epoch, ITM negatives from
the sample's own corpus, video at the official resolution with the CVPR video objectives."""

import pytest
import torch

from sclbench.cards import load_card
from sclbench.data import shards as S
from sclbench.data.streaming import StreamingBatches
from sclbench.model import SCLConfig
from sclbench.tasks import get_task
from sclbench.tasks.pretrain import ChunkedDataset, PretrainBatches

IMAGES = "data.corpora=[{name: sbu, root: sbu}, {name: cc3m, root: cc3m}, {name: vg, root: vg}]"
MIXED = "data.corpora=[{name: sbu, root: sbu}, {name: webvid, root: webvid}]"


class Tagged(torch.utils.data.Dataset):
    """Item i of corpus `tag`: its (tag, i) and the negative's tag, as the real datasets carry them."""

    def __init__(self, tag, n):
        self.tag, self.n = tag, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"index": i, "text": f"{self.tag}{i}", "label": self.tag}


def chunks(ds):
    return [[ds.groups[k][0][d][j]["text"] for d, j in items] for k, items in ds.chunks]


def test_batches_are_reformed_every_epoch_and_fixed_on_request():
    groups = {"image": ([Tagged(0, 10), Tagged(1, 7)], 4)}
    ds = ChunkedDataset(groups, seed=3)
    first = chunks(ds)
    ds.set_epoch(1)
    second = chunks(ds)
    assert len(first) == len(second) == 17 // 4 and first != second
    assert len({t for c in first for t in c}) == 16  # no sample twice within an epoch
    assert any(len({t[0] for t in c}) == 2 for c in first)  # corpora mixed inside a batch (official)
    ds.set_epoch(0)
    assert chunks(ds) == first  # a function of (seed, epoch): resumable
    fixed = ChunkedDataset(groups, seed=3, reform_every_epoch=False)
    fixed.set_epoch(1)
    assert chunks(fixed) == first


def pretrain_task(root, overrides, tokenizer):
    task = get_task(
        "pretrain",
        overrides + ["train.transform=eval", "train.chunk_size=2", "train.video_chunk_size=2"],
        data_root=root,
        seed=0,
    )
    task.tokenizer, task.model_config = tokenizer, SCLConfig.tiny(task.model_task)
    return task


class PathVisuals:
    """Stand-in for Visuals: records which file each image tensor came from."""

    def __init__(self, registry):
        self.registry = registry

    def __call__(self, source):
        where = str(getattr(source, "path", source))
        self.registry.setdefault(where, len(self.registry))
        return torch.full((1, 1), float(self.registry[where]))


def test_itm_negatives_come_from_the_same_corpus(synth_root, synth_tokenizer):
    task = pretrain_task(synth_root / "pretrain", [IMAGES], synth_tokenizer)
    batches = task.build_dataset("train")
    assert isinstance(batches, PretrainBatches)
    registry: dict[str, int] = {}
    for datasets, _ in batches.dataset.groups.values():
        for d in datasets:
            d.visuals = PathVisuals(registry)
    corpus_of = lambda value: next(p for p, i in registry.items() if i == value).split("/pretrain/")[1].split("/")[0]  # noqa
    pairs = 0
    for epoch in range(3):
        batches.set_epoch(epoch)
        for i in range(len(batches)):
            b = batches[i]
            for img, neg in zip(b["images"].flatten().tolist(), b["neg_images"].flatten().tolist()):
                assert corpus_of(img) == corpus_of(neg)
                pairs += 1
    assert pairs >= 30 and {p.split("/pretrain/")[1].split("/")[0] for p in registry} == {"sbu", "cc3m", "vg"}


def test_negatives_across_the_modality_on_request(synth_root, synth_tokenizer):
    task = pretrain_task(synth_root / "pretrain", [IMAGES, "train.itm_negatives=modality"], synth_tokenizer)
    groups = task.build_dataset("train").dataset.groups
    pairs = sum(len(r.captions) for c in task.corpora for r in task.corpus_records(c))
    assert [len(d) for d in groups["image"][0]] == [pairs]  # one pool of all image corpora


def test_video_pretraining_uses_the_official_resolution_and_objectives(synth_root, synth_tokenizer):
    card = load_card("pretrain")
    assert card.get("model.image_size") == 288 and card.get("model.video_image_size") == 224
    assert card.get("train.chunk_size") == 16 and card.get("train.video_chunk_size") == 6
    task = pretrain_task(synth_root / "pretrain", [MIXED], synth_tokenizer)
    # official: one image_size per run (288; "224 for video" when the run is video only)
    assert task.model_task == "pretrain_video" and task.model_overrides()["image_size"] == 288
    video_only = pretrain_task(
        synth_root / "pretrain", ["data.corpora=[{name: webvid, root: webvid}]"], synth_tokenizer
    )
    assert video_only.model_overrides()["image_size"] == 224
    assert task.objective(video=True).cfg.objectives == ("mlm", "itm", "itc", "mgsc")  # CVPR v1: no mltc
    assert "mltc" in task.objective(video=False).cfg.objectives
    images_only = pretrain_task(synth_root / "pretrain", [IMAGES], synth_tokenizer)
    assert images_only.model_overrides()["image_size"] == 288
    kinds = {k: size for k, (_, size) in task.build_dataset("train").dataset.groups.items()}
    assert kinds == {"image": 2, "video": 2}


def test_shard_corpora_stream_mixed_with_file_corpora(synth_root, synth_tokenizer, tmp_path):
    import shutil

    root = tmp_path / "pretrain"
    shutil.copytree(synth_root / "pretrain" / "sbu", root / "sbu")
    S.write_shards(S.corpus_records("cc3m", synth_root / "pretrain/cc3m"), root / "cc3m_shards", "cc3m", 1)
    corpora = "data.corpora=[{name: sbu, root: sbu}, {name: cc3m, root: cc3m_shards, format: shards}]"
    task = pretrain_task(root, [corpora], synth_tokenizer)
    assert task.validate_data(["train"]) == {"train": 5}  # the file corpus' records; shards: index read
    stream = task.build_dataset("train")
    assert isinstance(stream, StreamingBatches)
    assert stream.batches_per_epoch == (5 + 5) // 2
    out = list(torch.utils.data.DataLoader(stream, batch_size=1, collate_fn=task.collate))
    assert len(out) == 5 and all(b["images"].shape == (2, 1, 3, 32, 32) for b in out)
    with pytest.raises(Exception, match="not available with shard corpora"):
        pretrain_task(root, [corpora, "train.itm_negatives=modality"], synth_tokenizer).build_dataset("train")
