"""From files on disk to batches.

formats/       one reader per published format -> plain records (records.py)
transforms.py  CLIP-normalised image transforms; ClipTransform for clips
video.py       decord or PyAV / frame-folder clip reading, frame index sampling
masking.py     MLM and SCL text masking (used by the objectives, not the collate)
datasets.py    torch Datasets over records; collate.py turns their samples into batches
synthetic.py   the synthetic mini-benchmark; check.py reports what a data layout is missing
The tokenizer (loading, the synthetic one, encode) sits below this package and the model, in
`sclbench.common.tokenizer`. Modules are imported where used (`from sclbench.data.datasets import ...`)
to keep start-up light.
"""
