"""Datasets + collate: the batch keys and shapes the model and tasks consume."""

import pickle

import pytest
import torch
from torch.utils.data import DataLoader

from sclbench.data.collate import collate_captions, collate_nlvr2, collate_vqa
from sclbench.data.datasets import CaptionDataset, NLVR2Dataset, Visuals, VQADataset, caption_index
from sclbench.data.formats import AnswerVocab, read_karpathy, read_msrvtt, read_nlvr2, read_vqa
from sclbench.data.records import SkipCounter
from sclbench.data.transforms import build_transform
from sclbench.errors import DataError

L, SIZE = 16, 32


@pytest.fixture(scope="module")
def visuals():
    return Visuals(build_transform("eval", SIZE), num_frames=3)


def test_caption_pairs_with_negatives(synth_root, synth_tokenizer, visuals):
    records = read_karpathy(synth_root / "f30k", "f30k", "train")
    ds = CaptionDataset(records, visuals, synth_tokenizer, L, neg_images=True, neg_texts=3, seed=0)
    assert len(ds) == 5 * len(records)
    batch = collate_captions([ds[i] for i in range(4)])
    assert batch["images"].shape == batch["neg_images"].shape == (4, 1, 3, SIZE, SIZE)
    assert batch["text_ids"].shape == batch["text_masks"].shape == (4, L)
    assert batch["neg_text_ids"].shape == batch["neg_text_masks"].shape == (4, 3, L)
    assert batch["index"].tolist() == [0, 1, 2, 3] and len(batch["texts"]) == 4
    assert batch["texts"][0] == records[0].captions[0]
    assert torch.equal(ds[0]["neg_text_ids"], ds[0]["neg_text_ids"])  # seeded per (seed, epoch, index)
    ds.set_epoch(1)
    texts, owner = caption_index(records)
    assert len(texts) == len(owner) == len(ds) and owner[:6] == [0] * 5 + [1]


def test_negative_captions_come_from_other_images(synth_root, synth_tokenizer, visuals):
    records = read_karpathy(synth_root / "f30k", "f30k", "val")
    ds = CaptionDataset(records, visuals, synth_tokenizer, L, neg_texts=4)
    for i in range(len(ds)):
        rng = ds._rng(i)
        key = records[ds.items[i][0]].image_id
        assert all(records[ds.items[ds._other(rng, key)][0]].image_id != key for _ in range(4))


def test_video_batches(synth_root, synth_tokenizer):
    records = read_msrvtt(synth_root / "msrvtt", "train")
    ds = CaptionDataset(
        records, Visuals(build_transform("pretrain_train", SIZE), 4, "random"), synth_tokenizer, L, neg_images=True
    )
    loader = DataLoader(ds, batch_size=2, collate_fn=collate_captions)
    batch = next(iter(loader))
    assert batch["images"].shape == batch["neg_images"].shape == (2, 4, 3, SIZE, SIZE)
    assert batch["images"].dtype == torch.float32


def test_vqa_batch(synth_root, synth_tokenizer, visuals):
    records = read_vqa(synth_root / "vqa", "train")
    vocab = AnswerVocab.build(records, min_count=3)
    ds = VQADataset(records, vocab, visuals, synth_tokenizer, L, drop_unanswerable=True)
    batch = collate_vqa([ds[i] for i in range(3)])
    assert batch["vqa_targets"].shape == (3, len(vocab)) and batch["vqa_targets"].max() <= 1
    assert batch["question_ids"].tolist() == [r.question_id for r in ds.records[:3]]
    assert batch["images"].shape == (3, 1, 3, SIZE, SIZE)
    test = VQADataset(read_vqa(synth_root / "vqa", "test"), vocab, visuals, synth_tokenizer, L)
    assert collate_vqa([test[0]])["vqa_targets"].sum() == 0


def test_nlvr2_batch_with_workers(synth_root, synth_tokenizer, visuals):
    ds = NLVR2Dataset(read_nlvr2(synth_root / "nlvr2", "dev"), visuals, synth_tokenizer, L)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_nlvr2)
    batch = next(iter(loader))
    assert batch["images_0"].shape == batch["images_1"].shape == (4, 1, 3, SIZE, SIZE)
    assert batch["labels"].dtype == torch.long and set(batch["labels"].tolist()) <= {0, 1}
    assert batch["identifiers"] == [r.identifier for r in ds.records[:4]]
    assert len(pickle.dumps(ds)) < 50_000  # workers get references to files, never re-read annotations


def test_corrupt_sample_raises_or_is_skipped(synth_root, synth_tokenizer, visuals, tmp_path):
    import shutil

    root = tmp_path / "f30k"
    shutil.copytree(synth_root / "f30k", root)
    records = read_karpathy(root, "f30k", "test")
    records[1].image.path.write_bytes(b"broken")
    strict = CaptionDataset(records, visuals, synth_tokenizer, L, per_caption=False)
    with pytest.raises(DataError, match=records[1].image.path.name):
        strict[1]
    lenient = CaptionDataset(records, visuals, synth_tokenizer, L, per_caption=False, skip_corrupt=True)
    batch = collate_captions([lenient[i] for i in range(3)])
    assert batch["index"].tolist() == [0, 2] and len(batch["skipped"]) == 1
    counter = SkipCounter()
    counter.add_batch(batch)
    assert counter.total == 1 and records[1].image.path.name in counter.examples["corrupt"][0]
    assert collate_captions([lenient[1]])["index"].numel() == 0
