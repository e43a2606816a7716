"""`sclbench browse`: result records -> a static site of sample cards (sclbench.results.browse).

This job joins the records with the data they were evaluated on: it builds each record's task with the
record's own overrides (so splits such as VQA's trainable_val come out the same), reads the split with
the task's readers, and hands the results floor a `SplitView` whose media open through the project's
decoders (ImageSource for files and arrow cells in every Pillow mode, `read_clip` for videos).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sclbench.data.records import CaptionRecord, ImageSource, NLVR2Record, VideoRecord, VQARecord
from sclbench.data.video import read_clip
from sclbench.errors import DataError, SCLBenchError
from sclbench.results import ResultRecord, collect, fingerprint_files
from sclbench.results.browse import MediaItem, SiteSummary, SplitView, build_site
from sclbench.results.browse.flips import Flips, count_flips

COMPARE_RESAMPLES = 2000  # the header's intervals; `sclbench compare` takes 10,000 by default
NO_ROOT_FIX = (
    "pass --data-root DIR (the folder `sclbench data synth` or the demo wrote, holding one folder per task, "
    "or the task's own data folder), or --no-media to browse the predictions without pictures"
)


def browse(
    results: str | Path,
    out: str | Path,
    compare: str | Path | None = None,
    data_root: str | Path | None = None,
    media: bool = True,
    max_samples: int = 2000,
    frames: int = 4,
) -> SiteSummary:
    """Write the browse site of every record under `results` (paired with `compare`'s) into `out`."""
    records = collect(results)
    if not records:
        raise DataError(f"no result records under {results} (run `sclbench eval` first)")
    others = None
    if compare is not None:
        others = collect(compare)
        if not others:
            raise DataError(f"--compare {compare}: no result records there")
    views = SplitViews(Path(data_root) if data_root is not None else None) if media else None
    view_for = views.view if views is not None else None
    return build_site(
        records, out, view_for, others, max_samples=max_samples, frames=frames, flips_for=flips_by_compare
    )


def flips_by_compare(a: ResultRecord, b: ResultRecord, family: str, preds_a: list, preds_b: list) -> Flips:
    """The flipped samples as `sclbench compare` lists them, with its paired difference, interval and
    p-value per metric for the page's header (so the site and `compare` agree sample for sample)."""
    from sclbench.app.compare import compare_records, format_p

    comparison = compare_records(a, b, resamples=COMPARE_RESAMPLES, predictions_a=preds_a, predictions_b=preds_b)
    lists = {name: (m.flipped_a_to_b, m.flipped_b_to_a) for name, m in comparison.metrics.items() if m.paired}
    flips = count_flips(family, preds_a, preds_b, lists)
    for name, m in comparison.metrics.items():
        if m.difference is None or not m.paired:
            continue
        line = f"{name}: B - A = {m.difference:+.2f} points"
        if m.ci is not None:
            line += f" [{m.ci[0]:+.2f}, {m.ci[1]:+.2f}]"
        if m.p_value is not None:
            line += f", p {format_p(m.p_value)}"
        line += f"; {len(m.flipped_a_to_b)} A higher, {len(m.flipped_b_to_a)} B higher of {m.paired}"
        flips.summary.append(line + (f" ({m.note})" if m.note else ""))
    return flips


class SplitViews:
    """Reads each (task, split, data) once; a record's view tells its page where its media are."""

    def __init__(self, data_root: Path | None) -> None:
        self.data_root = data_root
        self._cache: dict[tuple, SplitView] = {}

    def root_for(self, record: ResultRecord) -> Path:
        if self.data_root is not None:
            per_task = self.data_root / record.task
            return per_task if per_task.is_dir() else self.data_root
        card_root = ((record.config.get("card") or {}).get("data") or {}).get("root")
        if card_root and Path(str(card_root)).expanduser().is_dir():
            return Path(str(card_root)).expanduser()
        where = f" ({record.source})" if record.source else ""
        name = f"{record.task} {record.split} {record.checkpoint_name}"
        raise DataError(f"record {name}{where} does not say where its data is: {NO_ROOT_FIX}")

    def view(self, record: ResultRecord) -> SplitView:
        root = self.root_for(record)
        overrides = [str(o) for o in (record.config.get("overrides") or [])]
        limit = record.protocol.get("limit")
        key = (record.task, record.split, str(root), tuple(overrides), limit)
        if key not in self._cache:
            self._cache[key] = read_view(record, root, overrides, limit)
        return self._cache[key]


def read_view(record: ResultRecord, root: Path, overrides: list[str], limit: Any) -> SplitView:
    from sclbench.tasks import get_task

    where = f"record {record.source or record.task}"
    try:
        task = get_task(record.task, overrides=overrides or None, data_root=root)
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            task.limit = limit  # the evaluation kept the first `limit` records of the split
        split_records = getattr(task, "split_records", task.records)
        records = [r for name in record.split.split("+") for r in split_records(name)]
    except SCLBenchError as err:
        raise type(err)(f"{where}: cannot read its split {record.split!r} under {root}: {err}") from None
    view = SplitView()
    if record.data_fingerprint:
        try:
            found = fingerprint_files(task.annotation_files())
        except SCLBenchError:
            found = None
        if found != record.data_fingerprint:
            view.notes.append(
                f"the annotation files under {root} differ from those this record was evaluated on "
                "(data fingerprint): a card may show another sample's picture or text"
            )
    # By what the readers return, not by the card's family name: a user's own family over the same
    # records is browsed the same way.
    fills = {VQARecord: ("vqa", _fill_vqa), NLVR2Record: ("nlvr2", _fill_nlvr2)}
    fills.update({CaptionRecord: ("retrieval", _fill_retrieval), VideoRecord: ("retrieval", _fill_video)})
    kind = type(records[0]) if records else None
    if kind in fills:
        view.family, fill = fills[kind]
        fill(view, records, record.task)
    return view


def _image_item(task: str, media_id: str, source: ImageSource) -> MediaItem:
    return MediaItem(media_id, f"{task}:image:{media_id}:{source.where}", lambda n, s=source: [s.open()])


def _fill_vqa(view: SplitView, records: list, task: str) -> None:
    for r in records:
        view.questions[str(r.question_id)] = {
            "question": r.question,
            "answers": list(r.answers),
            "answer_type": r.answer_type,
            "question_type": r.question_type,
            "image_id": str(r.image_id),
        }
        view.media.setdefault(str(r.image_id), _image_item(task, str(r.image_id), r.image))


def _nlvr2_image_id(record: Any, side: int, source: ImageSource) -> str:
    # The NLVR2 files name each picture <pair id>-img0 / -img1; a file's own stem says so directly.
    return source.path.stem if source.path is not None else f"{record.pair_id}-img{side}"


def _fill_nlvr2(view: SplitView, records: list, task: str) -> None:
    for r in records:
        ids = []
        for side, source in enumerate((r.image_0, r.image_1)):
            media_id = _nlvr2_image_id(r, side, source)
            view.media.setdefault(media_id, _image_item(task, media_id, source))
            ids.append(media_id)
        view.statements[r.identifier] = {"sentence": r.sentence, "label": r.label, "images": ids}


def _fill_retrieval(view: SplitView, records: list, task: str) -> None:
    for i, r in enumerate(records):
        view.gallery.append(str(r.image_id))
        view.captions.extend((c, i) for c in r.captions)
        view.media.setdefault(str(r.image_id), _image_item(task, str(r.image_id), r.image))


def _fill_video(view: SplitView, records: list, task: str) -> None:
    for i, r in enumerate(records):
        view.gallery.append(str(r.video_id))
        view.captions.extend((c, i) for c in r.captions)
        key = f"{task}:video:{r.video_id}:{r.video}"
        view.media.setdefault(
            str(r.video_id), MediaItem(str(r.video_id), key, lambda n, p=r.video: read_clip(p, n), video=True)
        )
