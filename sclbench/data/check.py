"""`sclbench data check TASK --root DIR`: what a data layout is missing, before a run finds out.

Runs the task's readers with a skip counter, so every annotation file is parsed and every image or
video it names is looked up; reports per split how many samples were found, how many media files
are missing (with the first few paths) and which annotation files are absent or malformed. The
readers read exactly (see formats/_io.py): an empty file, a repeated JSON key, bytes in another
encoding, a CSV with a header and no rows are problems here; a byte-order mark is read through. A
required split without a single sample is a problem; under a pre-training root every shard folder
is read through and held to its index (a shard cut short or holding fewer samples is named). A
folder of ViLT arrow tables (data.format: arrow) is checked table by table, as those runs read it.

The task is a card name (packaged or the user's); its format (`sclbench.data.formats.FORMATS`) names
the checker below that reads the layout.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sclbench.cards import TaskCard, available_cards, load_card
from sclbench.data.formats import Format, arrow, card_format, karpathy, lsmdc, msrvtt, nlvr2, pretrain, vqa
from sclbench.data.formats._io import MissingDataFile
from sclbench.data.records import ImageSource, NLVR2Record, SkipCounter, VideoRecord
from sclbench.data.shards import INDEX_NAME, check_shards
from sclbench.data.video import read_clip
from sclbench.errors import DataError

SHOW = 5


@dataclass
class LayoutReport:
    task: str
    root: Path
    found: dict[str, int] = field(default_factory=dict)  # split/corpus -> samples found
    missing: dict[str, int] = field(default_factory=dict)  # split/corpus -> media files missing
    examples: dict[str, list[str]] = field(default_factory=dict)  # split/corpus -> first missing paths
    problems: list[str] = field(default_factory=list)  # required files absent or malformed
    corrupt: dict[str, int] = field(default_factory=dict)  # split/corpus -> media that do not decode
    notes: list[str] = field(default_factory=list)  # optional parts absent
    corrupt_examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems and not any(self.missing.values()) and not any(self.corrupt.values())

    def render(self) -> str:
        lines = [f"{self.task} at {self.root}: {'OK' if self.ok else 'INCOMPLETE'}"]
        for name, count in self.found.items():
            miss = self.missing.get(name, 0)
            bad = self.corrupt.get(name, 0)
            lines.append(
                f"  {name}: {count} samples"
                + (f", {miss} samples lack their image/video" if miss else "")
                + (f", {bad} images/videos do not decode" if bad else "")
            )
            lines += [f"    missing: {p}" for p in self.examples.get(name, [])[:SHOW]]
            if miss > SHOW:
                lines.append(f"    ... and {miss - SHOW} more")
            lines += [f"    corrupt: {p}" for p in self.corrupt_examples.get(name, [])[:SHOW]]
            if bad > SHOW:
                lines.append(f"    ... and {bad - SHOW} more corrupt")
        lines += [f"  problem: {p}" for p in self.problems]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)


def _media(record) -> list:
    if isinstance(record, NLVR2Record):
        return [record.image_0, record.image_1]
    return [record.video] if isinstance(record, VideoRecord) else [record.image]


def _decode_all(report: LayoutReport, name: str, records: list) -> None:
    """Decode every image (and 4 uniformly sampled frames of every clip, as evaluation reads them);
    count and list what does not decode (what --skip-corrupt would leave out)."""
    bad: list[str] = []
    for record in records:
        for media in _media(record):
            try:
                if isinstance(media, ImageSource):
                    media.open()
                else:
                    read_clip(media, 4)
            except DataError as err:
                bad.append(str(err))
    report.corrupt[name] = len(bad)
    report.corrupt_examples[name] = bad[:SHOW]


def _run(report: LayoutReport, name: str, read, required: bool = True, decode: bool = False) -> None:
    skip = SkipCounter(keep=SHOW)
    try:
        records = read(skip)
    except MissingDataFile as err:  # an optional part may be absent ...
        (report.problems if required else report.notes).append(f"{name}: {err}")
        return
    except DataError as err:  # ... but a file that is there and damaged (empty, malformed) is a problem
        report.problems.append(f"{name}: {err}")
        return
    report.found[name] = records if isinstance(records, int) else len(records)
    report.missing[name] = skip.total
    if required and not report.found[name] and not skip.total:  # files present, but not one sample
        report.problems.append(f"{name}: no samples; the annotation files hold no entry of this split")
    if decode and not isinstance(records, int):
        _decode_all(report, name, records)
    report.examples[name] = list(dict.fromkeys(p for paths in skip.examples.values() for p in paths))


def check_pretrain(report: LayoutReport, root: Path, card: TaskCard, decode: bool = False) -> None:
    corpora = {
        "coco": lambda s: pretrain.read_coco_pretrain(root / "coco", skip=s),
        "vg": lambda s: pretrain.read_vg(root / "vg", skip=s),
        "sbu": lambda s: pretrain.read_sbu(root / "sbu", skip=s),
        "cc3m": lambda s: pretrain.read_cc3m(root / "cc3m", skip=s),
    }
    for name, read in corpora.items():
        if (root / name).is_dir():
            _run(report, name, read, decode=decode)
    webvid = root / "webvid"
    for meta in sorted(webvid.glob("*.tsv")) + sorted(webvid.glob("*.csv")) if webvid.is_dir() else []:
        _run(
            report,
            f"webvid/{meta.name}",
            lambda s, m=meta: pretrain.read_webvid(m, webvid / "videos", skip=s),
            decode=decode,
        )
    # shard folders (`sclbench data shard` output, or img2dataset's): every shard read through and held
    # to its index, so a shard cut short is found here rather than mid-run
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name not in corpora):
        if (folder / INDEX_NAME).is_file() or any(folder.glob("*.tar")):
            _run(report, f"{folder.name} (shards)", lambda s, f=folder: check_shards(f).samples)
    if not report.found and not report.problems:
        report.problems.append(
            f"no pre-training corpus under {root}; expected one or more of coco/, vg/, "
            "sbu/, cc3m/, webvid/ or a shard folder (see sclbench/data/formats/pretrain.py)"
        )


def check_layout(task: str, root: str | Path, decode: bool = False) -> LayoutReport:
    """Check the layout of one task's data under `root` (a task: any card, see `available_cards`);
    `decode`: also decode every image and clip the layout names (slow: what `--skip-corrupt` would
    leave out is listed)."""
    if task not in available_cards():
        raise DataError(f"unknown task {task!r}; use one of {', '.join(available_cards())}")
    card = load_card(task)
    fmt = card_format(card)
    root = Path(root)
    report = LayoutReport(task, root)
    if not root.is_dir():
        report.problems.append(f"{root} is not a directory")
        return report
    if _arrow_layout(fmt, card, root):
        _arrow(report, fmt, card, root, decode)
        return report
    fmt.hook("checker")(report, root, card, decode)
    return report


def _dataset(card: TaskCard) -> str:
    return card.get("data.dataset", card.name)


def _arrow_layout(fmt: Format, card: TaskCard, root: Path) -> bool:
    """True when `root` holds the task's arrow tables (a folder of ViLT tables, not the raw layout)."""
    return fmt.arrow is not None and any((root / fmt.arrow.file(_dataset(card), s)).is_file() for s in fmt.arrow.splits)


def _arrow(report: LayoutReport, fmt: Format, card: TaskCard, root: Path, decode: bool = False) -> None:
    """Every table opened, validated and read cell by cell, as a run with data.format: arrow reads it."""
    tables, dataset = fmt.arrow, _dataset(card)
    for split in tables.splits:
        path = root / tables.file(dataset, split)
        if not path.is_file():
            (report.problems if split in tables.required else report.notes).append(f"{split} (arrow): {path} not found")
            continue
        _run(
            report,
            f"{split} (arrow)",
            lambda k, s=split: arrow.read_family_arrow(
                tables.family, root, s, dataset=dataset if tables.family == "image_retrieval" else None
            ),
            split in tables.required,
            decode,
        )


def _run_all(report: LayoutReport, runs: list, decode: bool) -> None:
    for name, read, required in runs:
        _run(report, name, read, required, decode)


def check_karpathy(report: LayoutReport, root: Path, card: TaskCard, decode: bool = False) -> None:
    dataset = _dataset(card)
    _run_all(
        report,
        [(s, lambda k, s=s: karpathy.read_karpathy(root, dataset, s, skip=k), True) for s in ("train", "val", "test")],
        decode,
    )


def check_vqa(report: LayoutReport, root: Path, card: TaskCard, decode: bool = False) -> None:
    _run_all(
        report, [(s, lambda k, s=s: vqa.read_vqa(root, s, skip=k), s in ("train", "val")) for s in vqa.SUBSETS], decode
    )


def check_nlvr2(report: LayoutReport, root: Path, card: TaskCard, decode: bool = False) -> None:
    _run_all(report, [(s, lambda k, s=s: nlvr2.read_nlvr2(root, s, skip=k), True) for s in nlvr2.SPLITS], decode)


def check_lsmdc(report: LayoutReport, root: Path, card: TaskCard, decode: bool = False) -> None:
    _run_all(report, [(s, lambda k, s=s: lsmdc.read_lsmdc(root, s, skip=k), s != "val") for s in lsmdc.FILES], decode)


def check_msrvtt(report: LayoutReport, root: Path, card: TaskCard, decode: bool = False) -> None:
    _run_all(report, _msrvtt(root), decode)


def _msrvtt(root: Path) -> list:
    """The layout a run reads by default (json where both are present) with its media looked up, and the
    other published layout's files too where they are present (a run may be pointed at them): read
    exactly, their media counted once, under the first layout."""
    runs = [(s, lambda k, s=s: msrvtt.read_msrvtt(root, s, skip=k), True) for s in msrvtt.SPLITS]
    csv_present = any((root / d / "MSRVTT_JSFUSION_test.csv").is_file() for d in ("", "msrvtt_data"))
    try:
        default = msrvtt.detect_layout(root)
    except DataError:
        return runs  # neither layout: the reader's message names what is missing
    if default == "json" and csv_present:
        runs += [
            (f"{s} (csv layout)", lambda k, s=s: msrvtt.read_msrvtt(root, s, layout="csv", skip=SkipCounter()), False)
            for s in msrvtt.SPLITS
        ]  # not required: a damaged file is still a problem (see _run)
    return runs
