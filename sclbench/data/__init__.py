"""From files on disk to batches.

formats/       one reader per published format -> plain records (records.py)
transforms.py  CLIP-normalised image transforms; ClipTransform for clips
video.py       decord or PyAV / frame-folder clip reading, frame index sampling
tokenizer.py   RoBERTa tokenizer loading, the synthetic tokenizer, encode()
masking.py     MLM and SCL text masking (used by the objectives, not the collate)
datasets.py    torch Datasets over records; collate.py turns their samples into batches
synthetic.py   the synthetic mini-benchmark; check.py reports what a data layout is missing
Modules are imported where used (`from sclbench.data.datasets import ...`) to keep start-up light.
"""
