"""A synthetic mini-benchmark in the exact published layouts (`sclbench data synth OUT`).

Paths under OUT (every task root passes `sclbench data check <task> --root OUT/<task>`):
  f30k/     karpathy/dataset_flickr30k.json, flickr30k-images/<id>.jpg
  coco/     karpathy/dataset_coco.json, train2014/ and val2014/COCO_<dir>_<id:012d>.jpg
  vqa/      v2_OpenEnded_mscoco_{train2014,val2014,test-dev2015,test2015}_questions.json,
            v2_mscoco_{train2014,val2014}_annotations.json, {train2014,val2014,test2015}/*.jpg
  nlvr2/    data/{train,dev,test1}.json, images/train/<dir>/<pair>-img{0,1}.png, {dev,test1}/<pair>-img*.png
  msrvtt/   annotation/MSR_VTT.json, high-quality/structured-symlinks/{train,val}_list_jsfusion.txt +
            jsfusion_val_caption_idx.pkl, msrvtt_data/MSRVTT_{train.9k,JSFUSION_test}.csv, videos/all/<id>.mp4
  lsmdc/    LSMDC16_annos_{training,val}.csv, LSMDC16_challenge_1000_publictect.csv,
            videos/<movie>/<clip>.mp4, frames_1fps/<clip>/<clip>_{idx:06d}.jpg
  pretrain/ vg/, sbu/, cc3m/, webvid/ (see formats/pretrain.py); COCO pre-training uses coco/
  arrow/    ViLT tables coco_caption_karpathy_*, f30k_caption_karpathy_*, vqav2_*, nlvr2_*
  tokenizer/  byte-level BPE with RoBERTa specials;  synth.json  what was generated, with which seed
  SCLBENCH_SYNTHETIC (in OUT and in every task root): the marker that says "synthetic data", so
            results made on it are labelled as such and never set against the papers' numbers.
Byte-identical for the same seed and scale.

What is written comes from the task cards (packaged, `--cards`, $SCLBENCH_TASKS_DIR): every card with a
`synth:` section gets a folder named after it, written by its format's writer
(`sclbench.data.formats.FORMATS`) at the card's `synth.splits` sizes, in `synth.order`.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from sclbench.cards import TaskCard, available_cards, load_card
from sclbench.common.processes import run_calls
from sclbench.data import synth_scenes as S
from sclbench.data.formats import arrow, card_format, karpathy, nlvr2, vqa
from sclbench.errors import ConfigError

MARKER = "SCLBENCH_SYNTHETIC"  # no .json suffix: it stays out of the tasks' data fingerprints
VQA_MIN_COUNT = 3  # the synthetic vocabulary threshold (official: 9, on 440k questions); see vqa_min_count
QUESTIONS_PER_IMAGE = 3
FRAMES = 16
# The smallest --scale. Every split has at least 2 samples (`_n`); at 0.003 and below every split of the
# packaged cards is at that floor (the largest, NLVR2's 800 training sets, rounds to 2), so a smaller scale
# would write the same benchmark under a scale it does not have. 0.005 to 2: tests/data/test_synth_scales.py.
MIN_SCALE = 0.005


def _n(count: int, scale: float) -> int:
    return max(2, round(count * scale))


def vqa_min_count(questions: int) -> int:
    """The answer vocabulary's threshold for `questions` answered (train + val) synthetic questions.

    VQA_MIN_COUNT, lowered at small scales to what the balanced plan gives each possible answer
    (questions // answers, at least 1): some answer then occurs that often (pigeonhole: every majority
    answer is one of the possible ones), so the vocabulary is never empty. From 42 questions (14 train
    + val images, scale 0.03 of the packaged card) up, VQA_MIN_COUNT as before.
    """
    return max(1, min(VQA_MIN_COUNT, questions // len(S.possible_answers())))


def _vqa_questions(card, scale: float) -> int:
    """Answered questions of a VQA part at this scale (train and val: the vocabulary's records)."""
    sizes = _sizes(card, scale)
    return QUESTIONS_PER_IMAGE * sum(n for split, n in sizes.items() if split in ("train", "val"))


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, separators=(",", ":")) + "\n")


def _save_image(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    img.save(buf, format="PNG" if path.suffix == ".png" else "JPEG", quality=90)
    path.write_bytes(buf.getvalue())


def _yuv420(img: Image.Image) -> np.ndarray:
    """RGB -> planar YUV 4:2:0 (BT.601, limited range) in numpy.

    Done here rather than by libswscale so that no SIMD code path can make the bytes depend on the
    machine or on buffer alignment.
    """
    rgb = np.asarray(img, dtype=np.float32)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    y = 16 + 0.257 * r + 0.504 * g + 0.098 * b
    u = 128 - 0.148 * r - 0.291 * g + 0.439 * b
    v = 128 + 0.439 * r - 0.368 * g - 0.071 * b
    h, w = y.shape
    half = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean((1, 3))  # noqa: E731
    planes = np.concatenate([y.ravel(), half(u).ravel(), half(v).ravel()])
    return planes.round().clip(0, 255).astype(np.uint8).reshape(h * 3 // 2, w)


def write_mp4(frames: list[Image.Image], path: Path, fps: int = 8) -> None:
    """H.264 mp4 (yuv420p, even width/height, one encoder thread so the bytes are reproducible)."""
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format="mp4") as container:
        # x264's assembly paths gave run-to-run differences once torch was imported; the C paths and
        # a single thread give the same bytes every time (and these clips are tiny).
        options = {"crf": "18", "threads": "1", "x264-params": "asm=0"}
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        stream.codec_context.thread_count = 1
        for img in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(_yuv420(img), format="yuv420p")))
        container.mux(stream.encode())


def _sizes(card, scale: float) -> dict[str, int]:
    """The card's `synth.splits` (samples per split at scale 1) at this scale, in the card's order."""
    splits = card.get("synth.splits")
    if not isinstance(splits, dict) or not splits:
        raise ConfigError(f"task card {card.name!r}: synth.splits should map each split to its size at scale 1")
    return {split: _n(count, scale) for split, count in splits.items()}


def write_karpathy(out: Path, card, scale: float, rng: random.Random, texts: list[str]) -> None:
    """Karpathy-format images and captions. `synth.image_folders` (split -> folder) writes the COCO
    layout (train2014/, val2014/, COCO_<folder>_<id>.jpg); else flat files under `synth.image_dir`
    (default flickr30k-images/, the folder the reader assumes when an entry names none)."""
    dataset = card.get("data.dataset", card.name)
    folders, image_dir = card.get("synth.image_folders"), card.get("synth.image_dir")
    images, sent_id = [], 0
    for split, count in _sizes(card, scale).items():
        for _ in range(count):
            idx = len(images)
            scene = S.random_scene(rng)
            if folders:
                folder = folders[split]
                entry = {
                    "filepath": folder,
                    "filename": f"COCO_{folder}_{100000 + idx:012d}.jpg",
                    "cocoid": 100000 + idx,
                }
                path = out / folder / entry["filename"]
            else:
                entry = {"filename": f"{1000000 + idx}.jpg", **({"filepath": image_dir} if image_dir else {})}
                path = out / (image_dir or karpathy.F30K_IMAGE_DIR) / entry["filename"]
            _save_image(S.render(scene, rng), path)
            caps = S.captions(scene)
            texts += caps
            sentences = [
                {
                    "tokens": c.lower().strip(".").replace(":", "").replace(",", "").split(),
                    "raw": c,
                    "imgid": idx,
                    "sentid": sent_id + j,
                }
                for j, c in enumerate(caps)
            ]
            entry.update(imgid=idx, split=split, sentences=sentences, sentids=[s["sentid"] for s in sentences])
            sent_id += len(caps)
            images.append(entry)
    _write_json(out / "karpathy" / karpathy.json_name(dataset), {"images": images, "dataset": dataset})


def write_vqa(out: Path, card, scale: float, rng: random.Random, texts: list[str]) -> None:
    qid = 0
    for split, count in _sizes(card, scale).items():  # train, val, test (test-dev: every other test question)
        questions, annotations = [], []
        # Balanced per split (VQA v2's complementary images): each question's answers spread evenly over
        # the images it is asked of, so the question alone does not tell the answer.
        for i, (scene, asked) in enumerate(S.balanced_questions(count, rng, k=QUESTIONS_PER_IMAGE)):
            image_id = {"train": 1, "val": 2, "test": 3}[split] * 100000 + i
            _save_image(S.render(list(scene), rng), vqa.image_path(out, split, image_id))
            for q in asked:
                qid += 1
                texts.append(q["question"])
                texts += q["answers"]
                questions.append({"image_id": image_id, "question": q["question"], "question_id": qid})
                annotations.append(
                    {
                        "question_type": q["question_type"],
                        "multiple_choice_answer": q["multiple_choice_answer"],
                        "answers": [
                            {"answer": a, "answer_confidence": "yes", "answer_id": j + 1}
                            for j, a in enumerate(q["answers"])
                        ],
                        "image_id": image_id,
                        "answer_type": q["answer_type"],
                        "question_id": qid,
                    }
                )
        subsets = ["test2015", "test-dev2015"] if split == "test" else [vqa.SUBSETS[split]]
        for sub in subsets:
            # test-dev is a subset of test (every other question here), both without annotations
            qs = questions[::2] if sub == "test-dev2015" else questions
            _write_json(
                out / f"v2_OpenEnded_mscoco_{sub}_questions.json",
                {
                    "info": {},
                    "task_type": "Open-Ended",
                    "data_type": "mscoco",
                    "license": {},
                    "data_subtype": sub,
                    "questions": qs,
                },
            )
        if split != "test":
            _write_json(
                out / f"v2_mscoco_{vqa.SUBSETS[split]}_annotations.json",
                {"info": {}, "license": {}, "data_subtype": vqa.SUBSETS[split], "annotations": annotations},
            )


def _nlvr2_pair(rng: random.Random, truths, targets):
    """Rejection-sample a scene pair whose statements have the target truth values."""
    for _ in range(2000):
        a, b = S.random_scene(rng), S.random_scene(rng)
        if all(t(a, b) == want for t, want in zip(truths, targets)):
            return a, b
    return None


def write_nlvr2(out: Path, card, scale: float, rng: random.Random, texts: list[str]) -> None:
    # 4 statements per set (two image pairs x two statements); the sets per split and why: the nlvr2 card
    for split, sets in _sizes(card, scale).items():
        lines = []
        for s in range(sets):
            while True:  # two statements per set, each true of one image pair and false of the other
                stmts = [S.statement(rng) for _ in range(2)]
                flips = [rng.random() < 0.5 for _ in stmts]
                pairs = [_nlvr2_pair(rng, [t for _, t in stmts], [f != bool(p) for f in flips]) for p in (0, 1)]
                if None not in pairs and stmts[0][0] != stmts[1][0]:
                    break
            directory = s % 10
            for p, (left, right) in enumerate(pairs):
                pair_id = f"{split}-{s}-{p}"
                img0, img1 = nlvr2.pair_paths(out, split, pair_id, directory)
                _save_image(S.render(left, rng), img0)
                _save_image(S.render(right, rng), img1)
                for k, (sentence, truth) in enumerate(stmts):
                    texts.append(sentence)
                    line = {
                        "identifier": f"{pair_id}-{k}",
                        "sentence": sentence,
                        "label": str(truth(left, right)),
                        "synset": "shapes",
                        "query": "shapes",
                    }
                    if split == "train":
                        line["directory"] = directory
                    lines.append(line)
        path = out / "data" / f"{split}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(json.dumps(x) + "\n" for x in lines))


def _motion(rng: random.Random):
    colour, shape, direction = rng.choice(list(S.COLOURS)), rng.choice(S.SHAPES), rng.choice(list(S.DIRECTIONS))
    caps = [
        f"A {colour} {shape} moves from {direction}.",
        f"A {shape} moving from {direction}.",
        f"The {colour} {shape} slides across the screen.",
        f"A {colour} shape moves from {direction}.",
        f"Video of a {colour} {shape} moving.",
    ]
    return S.render_motion(colour, shape, direction, FRAMES, rng), caps


def write_msrvtt(out: Path, card, scale: float, rng: random.Random, texts: list[str]) -> None:
    sizes = _sizes(card, scale)
    n_train, n_test = sizes["train"], sizes["test"]
    annotations, cap_idx, test_rows = [], {}, []
    for i in range(n_train + n_test):
        vid = f"video{i}"
        frames, caps = _motion(rng)
        write_mp4(frames, out / "videos" / "all" / f"{vid}.mp4")
        texts += caps
        annotations += [{"caption": c, "id": len(annotations) + j, "image_id": vid} for j, c in enumerate(caps)]
        if i >= n_train:
            cap_idx[vid] = rng.randrange(len(caps))
            test_rows.append([f"ret{i - n_train}", f"msr{i}", vid, caps[cap_idx[vid]]])
    _write_json(out / "annotation" / "MSR_VTT.json", {"info": {}, "images": [], "annotations": annotations})
    lists = out / "high-quality" / "structured-symlinks"
    lists.mkdir(parents=True, exist_ok=True)
    (lists / "train_list_jsfusion.txt").write_text("".join(f"video{i}\n" for i in range(n_train)))
    (lists / "val_list_jsfusion.txt").write_text("".join(f"{r[2]}\n" for r in test_rows))
    (lists / "jsfusion_val_caption_idx.pkl").write_bytes(pickle.dumps(cap_idx, protocol=4))
    csv_dir = out / "msrvtt_data"
    _write_csv(csv_dir / "MSRVTT_train.9k.csv", ["video_id"], [[f"video{i}"] for i in range(n_train)])
    _write_csv(csv_dir / "MSRVTT_JSFUSION_test.csv", ["key", "vid_key", "video_id", "sentence"], test_rows)


def _write_csv(path: Path, header, rows, delimiter=",") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=delimiter, lineterminator="\n")
    if header:
        writer.writerow(header)
    writer.writerows(rows)
    path.write_text(buf.getvalue())


def write_lsmdc(out: Path, card, scale: float, rng: random.Random, texts: list[str]) -> None:
    from sclbench.data.formats.lsmdc import FILES, movie_of

    clip_no = 0
    for split, count in _sizes(card, scale).items():
        lines = []
        for _ in range(count):
            movie = f"{1001 + clip_no % 3}_Synthetic_Shapes_{clip_no % 3}"
            start = 10 + 3 * clip_no
            stamp = lambda s: f"00.{s // 60:02d}.{s % 60:02d}.000"  # noqa: E731
            clip = f"{movie}_{stamp(start)}-{stamp(start + 2)}"
            assert movie_of(clip) == movie
            clip_no += 1
            frames, caps = _motion(rng)
            write_mp4(frames, out / "videos" / movie / f"{clip}.mp4")
            for idx, frame in enumerate(frames[::2], 1):  # "1 fps": every other frame, 1-based names
                _save_image(frame, out / "frames_1fps" / clip / f"{clip}_{idx:06d}.jpg")
            texts.append(caps[0])
            lines.append([clip, stamp(start), stamp(start + 2), stamp(start), stamp(start + 2), caps[0]])
        _write_csv(out / FILES[split], None, lines, delimiter="\t")


def write_pretrain(out: Path, card, scale: float, rng: random.Random, texts: list[str]) -> None:
    n = _sizes(card, scale)["train"]  # images (or clips) per corpus: vg, sbu, cc3m train and val, webvid
    regions = []
    for i in range(n):
        scene = S.random_scene(rng)
        _save_image(S.render(scene, rng), out / "vg" / "images" / "VG_100K" / f"{i + 1}.jpg")
        phrases = [f"{s.colour} {s.shape} {S._where(s.position)}" for s in scene]
        texts += phrases
        regions.append(
            {
                "id": i + 1,
                "regions": [
                    {
                        "region_id": 10 * (i + 1) + j,
                        "image_id": i + 1,
                        "phrase": p,
                        "x": 0,
                        "y": 0,
                        "width": 64,
                        "height": 64,
                    }
                    for j, p in enumerate(phrases)
                ],
            }
        )
    _write_json(out / "vg" / "annotations" / "region_descriptions.json", regions)
    for corpus, base, annot in (("sbu", "images_train", "annot.json"), ("cc3m", "images_train", "train_annot.json")):
        pairs = []
        for i in range(n):
            scene = S.random_scene(rng)
            rel = f"{i // 10:04d}/{i}.jpg"
            _save_image(S.render(scene, rng), out / corpus / base / rel)
            pairs.append([rel, rng.choice(S.captions(scene))])
        _write_json(out / corpus / annot, pairs)
        texts += [c for _, c in pairs]
    tsv = []
    for i in range(n):  # CC3M TSV form: caption <TAB> image path relative to the corpus root
        scene = S.random_scene(rng)
        rel = f"images_val/{i}.jpg"
        _save_image(S.render(scene, rng), out / "cc3m" / rel)
        tsv.append([rng.choice(S.captions(scene)), rel])
    _write_csv(out / "cc3m" / "val.tsv", None, tsv, delimiter="\t")
    meta, official = [], []
    for i in range(n):
        frames, caps = _motion(rng)
        page = f"{i // 10:03d}"
        write_mp4(frames, out / "webvid" / "videos" / page / f"{5000 + i}.mp4")
        meta.append([caps[0], f"{page}/{5000 + i}.mp4"])
        official.append([5000 + i, caps[0], page])
    _write_csv(out / "webvid" / "webvid_train.tsv", None, meta, delimiter="\t")
    _write_csv(out / "webvid" / "results_train.csv", ["videoid", "name", "page_dir"], official)


def arrow_karpathy(out: Path, card) -> None:
    """The ViLT caption tables of every synthetic split (COCO's restval its own table, as ViLT wrote it)."""
    dataset = card.get("data.dataset", card.name)
    for split in card.get("synth.splits"):
        records = karpathy.read_karpathy(out / card.name, dataset, split, coco_train_with_restval=False)
        arrow.write_caption_arrow(records, arrow.caption_table(out / "arrow", dataset, split))


def arrow_vqa(out: Path, card) -> None:
    by_split = {s: vqa.read_vqa(out / card.name, s) for s in vqa.SUBSETS}
    answered = by_split["train"] + by_split["val"]
    vocab = vqa.AnswerVocab.build(answered, min_count=vqa_min_count(len(answered)))
    vocab.save(out / card.name / "answer_vocab.json")
    for split, records in by_split.items():
        arrow.write_vqa_arrow(records, out / "arrow" / f"vqav2_{split}.arrow", vocab)


def arrow_nlvr2(out: Path, card) -> None:
    for split in nlvr2.SPLITS:
        arrow.write_nlvr2_arrow(nlvr2.read_nlvr2(out / card.name, split), out / "arrow" / f"nlvr2_{split}.arrow")


def synth_cards() -> dict[str, TaskCard]:
    """The cards with a `synth:` section (packaged and the user's), in the benchmark's order: `synth.order`,
    then name. The order fixes the tokenizer's corpus, so it is part of the bytes."""
    cards = [load_card(name) for name in available_cards()]
    cards = [c for c in cards if isinstance(c.get("synth"), dict)]
    cards.sort(key=lambda c: (c.get("synth.order", float("inf")), c.name))
    return {c.name: c for c in cards}


def _make_part(card: TaskCard, out: Path, seed: int, scale: float) -> list[str]:
    """Write one part of the benchmark; returns the texts it used (for the tokenizer). Each part has
    its own generator, so changing one part never changes the others (and parts can run in parallel)."""
    rng, texts = random.Random(f"{seed}/{card.name}"), []
    card_format(card).hook("writer")(out / card.name, card, scale, rng, texts)
    return texts


def generate(
    out_dir: str | Path,
    seed: int = 0,
    scale: float = 1.0,
    *,
    tokenizer: bool = True,
    workers: int = 1,
    parts: Sequence[str] | None = None,
) -> Path:
    """Write the whole mini-benchmark under `out_dir`; returns it. ~seconds, a few MB at scale 1.

    workers > 1 writes the parts in that many processes; the files are the same bytes either way.
    `parts` (default: every card with a `synth:` section) writes only those tasks' folders, e.g. ("f30k",)
    at scale 25 for the full F30K test size (1,000 images) without 25x of every video; each part's bytes
    do not depend on which others are written (the tokenizer, trained on the written parts' texts, does).
    """
    if not scale >= MIN_SCALE:  # NaN too
        raise ConfigError(
            f"--scale {scale:g} is below the smallest supported scale, {MIN_SCALE:g} (from 0.003 down every "
            "split of the packaged cards is at its floor of 2 samples: a smaller scale changes only the label)"
        )
    cards = synth_cards()
    chosen = tuple(cards if parts is None else parts)
    unknown = sorted(set(chosen) - set(cards))
    if unknown or not chosen:
        raise ValueError(f"synthetic parts {unknown or list(chosen)}: choose from {', '.join(cards)}")
    chosen = tuple(name for name in cards if name in chosen)  # the canonical order
    formats = {name: card_format(cards[name]) for name in chosen}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    calls = [(_make_part, cards[name], out, seed, scale) for name in chosen]
    # The video parts take most of the time: they start first.
    first = sorted(range(len(calls)), key=lambda i: not formats[chosen[i]].video)
    per_part = run_calls(calls, workers, start_order=first)
    texts = [t for part in per_part for t in part]  # the parts' order, whoever wrote them
    for name in chosen:
        if formats[name].arrow_writer:
            formats[name].hook("arrow_writer")(out, cards[name])
    if tokenizer:
        from sclbench.common.tokenizer import train_tokenizer

        train_tokenizer(texts, out / "tokenizer", vocab_size=600)
    info = {
        "generator": "sclbench.data.synthetic",
        "seed": seed,
        "scale": scale,
        "vqa_min_count": min(
            (vqa_min_count(_vqa_questions(cards[n], scale)) for n in chosen if formats[n].name == "vqa"),
            default=VQA_MIN_COUNT,
        ),
        "video_frames": FRAMES,
        "tasks": sorted(chosen),
    }
    _write_json(out / "synth.json", info)
    marker = json.dumps({"synthetic": True, "generator": info["generator"], "seed": seed, "scale": scale}) + "\n"
    for folder in (out, *(out / name for name in chosen)):
        (folder / MARKER).write_text(marker)
    return out


def synthetic_marker(root: str | Path) -> dict | None:
    """The marker's content when `root` (a task's data root) or a folder above it is synthetic data."""
    here = Path(root).resolve()
    for folder in (here, *list(here.parents)[:2]):
        path = folder / MARKER
        if path.is_file():
            try:
                return json.loads(path.read_text())
            except (OSError, ValueError):
                return {"synthetic": True}
    return None
