"""A pre-training run on streamed shards (mixed with a file corpus), killed and resumed through the
real trainer, ends with the same weights as the uninterrupted run (needs the trainer's stream path)."""

import shutil

import pytest
import torch

from sclbench.data import shards as S
from sclbench.data.streaming import StreamingBatches
from sclbench.engine.checkpointing import latest
from sclbench.engine.trainer import TrainConfig, Trainer
from sclbench.model import SCLConfig, SCLModel
from sclbench.tasks import get_task


@pytest.fixture(scope="module")
def stream_root(synth_root, tmp_path_factory):
    root = tmp_path_factory.mktemp("stream") / "pretrain"
    shutil.copytree(synth_root / "pretrain" / "sbu", root / "sbu")
    S.write_shards(S.corpus_records("cc3m", synth_root / "pretrain/cc3m"), root / "cc3m_shards", "cc3m", 1)
    return root


def run(root, tokenizer, out, workers):
    corpora = "data.corpora=[{name: sbu, root: sbu}, {name: cc3m, root: cc3m_shards, format: shards}]"
    task = get_task(
        "pretrain", [corpora, "train.chunk_size=2", "train.transform=pretrain_train"], data_root=root, seed=0
    )
    torch.manual_seed(0)
    config = SCLConfig.tiny("pretrain", drop_rate=0.1)
    task.tokenizer, task.model_config = tokenizer, config
    model = SCLModel(config)
    cfg = TrainConfig(
        lr=1e-3,
        max_steps=6,
        global_batch_size=1,
        per_device_batch_size=1,
        out_dir=str(out),
        seed=3,
        log_every=1,
        tensorboard=False,
        device="cpu",
        save_every_steps=2,
        num_workers=workers,
    )
    dataset = task.build_dataset("train")
    assert isinstance(dataset, StreamingBatches) and dataset.batches_per_epoch == 5  # 6 steps: 2 epochs
    trainer = Trainer(model, task.loss, dataset, task.collate, cfg)
    return trainer, trainer.fit()


@pytest.mark.parametrize("workers", [0, 2])
def test_killed_streaming_run_resumes_to_the_same_weights(stream_root, synth_tokenizer, tmp_path, workers):
    torch.set_num_threads(1)
    ref, _ = run(stream_root, synth_tokenizer, tmp_path / "ref", workers)
    run(stream_root, synth_tokenizer, tmp_path / "run", workers)
    latest(tmp_path / "run").unlink()  # killed between step 4 and step 6
    latest(tmp_path / "run").unlink()  # ... and between step 2 and 4: resume mid-epoch (batch 2 of 5)
    resumed, summary = run(stream_root, synth_tokenizer, tmp_path / "run", workers)
    assert summary["resumed_from"].endswith("step-00000002.pt") and summary["step"] == 6
    a, b = ref.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# End-to-end runs (subprocesses, training, compiling, fuzzing real jobs): CI runs them; the fast lane
# (-m "not slow") leaves them out to stay under two minutes.
pytestmark = pytest.mark.slow
