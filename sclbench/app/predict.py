"""Asking a checkpoint things: VQA answers, NLVR2 verdicts, retrieval rankings.

Each function takes a `Predictor` (or a checkpoint to build one from) and plain inputs (image paths
or PIL images, strings). Inputs go through the evaluation's own preprocessing: the `eval`
transform at the model's resolution (clips: the same frame sampling, `uniform`) and the tokenizer
that travels with the weights, truncated/padded to the model's text length; the scores are the
heads the evaluation uses (VQA: sigmoid of the answer logits, as trained with BCE; NLVR2: softmax
of the two-pass classifier; retrieval: the cross-encoder `rank_output`, or the ITM head's match
probability for a pre-trained checkpoint, or the contrastive cosine with `scorer="contrastive"`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from sclbench.common.textfile import load_json, read_text
from sclbench.errors import CheckpointError, ConfigError, DataError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mkv", ".webm", ".mov")
VIDEO_TASKS = ("msrvtt", "lsmdc", "pretrain_video")
Media = Any  # a path (image or clip) or a PIL image


@dataclass
class Predictor:
    """A loaded model with the evaluation's preprocessing."""

    model: Any
    tokenizer: Any
    task: str  # the model task of the checkpoint (config.task)
    answers: list[str] | None = None  # VQA answer vocabulary, index = classifier output
    num_frames: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    name: str = ""

    def __post_init__(self) -> None:
        from sclbench.data.datasets import Visuals
        from sclbench.data.transforms import build_transform

        self.model.eval()
        self.visuals = Visuals(
            build_transform("eval", self.model.config.image_size), num_frames=self.num_frames, frame_mode="uniform"
        )

    @property
    def max_len(self) -> int:
        return int(self.model.config.max_text_len)

    def pixels(self, media: Media) -> torch.Tensor:
        """[1, F, 3, H, W] for one image (F = 1) or clip, as the evaluation's batches hold it."""
        from PIL import Image

        from sclbench.data.records import to_rgb

        if isinstance(media, Image.Image):
            # The datasets' own decoder: 16-bit greyscale scaled, palette and CMYK converted, alpha dropped.
            tensor = self.visuals.transform(to_rgb(media)).unsqueeze(0)
        else:
            path = Path(media)
            if not path.is_file():
                raise DataError(f"{path} does not exist (pass an image or video file)")
            if path.suffix.lower() in VIDEO_SUFFIXES:
                tensor = self.visuals(path)
            else:
                from sclbench.data.records import ImageSource

                tensor = self.visuals(ImageSource(path=path))
        return tensor.unsqueeze(0).to(self.device)

    def text(self, sentences: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        from sclbench.common.tokenizer import encode

        enc = encode(list(sentences), self.tokenizer, self.max_len)
        return enc["ids"].to(self.device), enc["masks"].to(self.device)


def _read_answers(path: Path) -> list[str]:
    from sclbench.data.formats.vqa import AnswerVocab

    try:
        return list(AnswerVocab.load(path).answers)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise DataError(f"cannot read the VQA answer vocabulary {path}: {err}") from None


def find_answers(ckpt_dir: Path | None, answers: str | Path | None) -> list[str] | None:
    """The VQA answer list: --answers (a vocabulary file, or a VQA data root holding
    answer_vocab.json), else the one saved beside the weights."""
    for candidate in ([Path(answers)] if answers else []) + ([ckpt_dir] if ckpt_dir else []):
        path = candidate / "answer_vocab.json" if candidate.is_dir() else candidate
        if path.is_file():
            return _read_answers(path)
        if answers and candidate == Path(answers):
            raise DataError(f"--answers {answers}: no such file (nor a folder holding answer_vocab.json)")
    return None


def load_predictor(
    ckpt: str | Path,
    task: str | None = None,
    tokenizer: str | None = None,
    answers: str | Path | None = None,
    num_frames: int | None = None,
    device: str | None = None,
) -> Predictor:
    """A Predictor for a checkpoint sclbench loads (registered name, sclbench folder, official file).

    task: the model task (vqa, nlvr2, f30k, coco, msrvtt, lsmdc, pretrain); default: the one the
    checkpoint's config.json names. num_frames (clips): default the task card's `data.num_frames`.
    """
    from sclbench.model.checkpoint import CONFIG_NAME
    from sclbench.model.config import SCLConfig
    from sclbench.model.factory import create_model
    from sclbench.model.hub import resolve

    resolved = resolve(str(ckpt))
    ckpt_dir = resolved.path if resolved.path.is_dir() else None
    if task is None:
        if ckpt_dir is None or not (ckpt_dir / CONFIG_NAME).is_file():
            raise ConfigError(
                f"{ckpt}: an official checkpoint file does not say its task; pass --task "
                "(vqa, nlvr2, f30k, coco, msrvtt, lsmdc or pretrain)"
            )
        task = SCLConfig.load(ckpt_dir / CONFIG_NAME).task
    loaded = create_model(str(ckpt), task=task, tokenizer=tokenizer)
    vocab = find_answers(ckpt_dir, answers) if "vqa" in loaded.model.config.heads else None
    if vocab is not None and len(vocab) != loaded.model.config.num_answers:
        raise DataError(
            f"the answer vocabulary has {len(vocab)} answers but the checkpoint's VQA head "
            f"{loaded.model.config.num_answers}: pass the vocabulary it was fine-tuned with (--answers)"
        )
    if num_frames is None:
        num_frames = 1
        if task in VIDEO_TASKS:
            from sclbench.cards import load_card

            num_frames = int(load_card(task if task != "pretrain_video" else "pretrain").get("data.num_frames", 4))
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = loaded.model.to(dev)
    return Predictor(model, loaded.tokenizer, task, vocab, num_frames, dev, resolved.name)


def _as_predictor(p: Predictor | str | Path, **kwargs: Any) -> Predictor:
    return p if isinstance(p, Predictor) else load_predictor(p, **kwargs)


@torch.no_grad()
def answer_question(p: Predictor | str | Path, image: Media, question: str, top_k: int = 5) -> list[dict[str, Any]]:
    """VQA: the top-k answers with their scores (sigmoid of the answer logits, in [0, 1])."""
    p = _as_predictor(p)
    if not hasattr(p.model, "vqa_classifier"):
        raise CheckpointError(f"{p.name} has no VQA head (its task is {p.task}); use a VQA fine-tuned checkpoint")
    if p.answers is None:
        raise DataError("no VQA answer vocabulary: pass --answers (answer_vocab.json or the VQA data root)")
    ids, masks = p.text([question])
    logits = p.model.vqa_classifier(p.model(ids, masks, p.pixels(image)).cls_feats)[0].float()
    scores, idx = torch.sigmoid(logits).topk(min(top_k, logits.numel()))
    return [{"answer": p.answers[int(i)], "score": float(s)} for s, i in zip(scores, idx)]


@torch.no_grad()
def verify_statement(p: Predictor | str | Path, left: Media, right: Media, statement: str) -> dict[str, Any]:
    """NLVR2: is the statement true of the (left, right) image pair? With the probability of true."""
    p = _as_predictor(p)
    if not hasattr(p.model, "nlvr2_classifier"):
        raise CheckpointError(f"{p.name} has no NLVR2 head (its task is {p.task}); use an NLVR2 fine-tuned checkpoint")
    ids, masks = p.text([statement])
    logits = p.model.nlvr2_logits(ids, masks, p.pixels(left), p.pixels(right))
    prob = float(logits.float().softmax(1)[0, 1])
    return {"prediction": prob > 0.5, "prob_true": prob}


def _pair_scores(p: Predictor, media: Sequence[Media], sentences: Sequence[str], scorer: str) -> torch.Tensor:
    """Score matrix [len(media), len(sentences)]."""
    model = p.model
    ids, masks = p.text(sentences)
    text = model.encode_text(ids, masks)
    out = torch.empty(len(media), len(sentences))
    for i, item in enumerate(media):
        vision = model.encode_vision(p.pixels(item))
        if scorer == "contrastive":
            t, v = model.contrastive_features(text, vision.repeat(len(sentences)))
            out[i] = torch.nn.functional.cosine_similarity(t, v, dim=-1).float().cpu()
            continue
        fused = model.fuse(text, masks, vision.repeat(len(sentences)))
        if scorer == "rank":
            out[i] = model.rank_output(fused.cls_feats).squeeze(-1).float().cpu()
        else:  # itm: probability of "match"
            out[i] = model.itm_score(fused.cls_feats).float().softmax(-1)[:, 1].cpu()
    return out


def _scorer(p: Predictor, scorer: str | None) -> str:
    heads = set(p.model.config.heads)
    if scorer is None:
        scorer = "rank" if "rank" in heads else "itm" if "itm" in heads else "contrastive"
    needs = {"rank": "rank", "itm": "itm", "contrastive": "con"}
    if scorer not in needs:
        raise ConfigError(f"scorer {scorer!r}: choose rank (fine-tuned retrieval), itm or contrastive")
    if needs[scorer] not in heads:
        raise CheckpointError(f"{p.name} (task {p.task}) has no {scorer} head; its heads: {', '.join(sorted(heads))}")
    return scorer


def list_media(folder: str | Path) -> list[Path]:
    folder = Path(folder)
    if folder.is_file():
        return [folder]
    if not folder.is_dir():
        raise DataError(f"{folder} is neither a folder of images/clips nor a file")
    files = sorted(f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
    if not files:
        raise DataError(f"{folder} holds no images or clips ({', '.join(IMAGE_SUFFIXES + VIDEO_SUFFIXES)})")
    return files


@torch.no_grad()
def rank_images(
    p: Predictor | str | Path,
    sentence: str,
    images: str | Path | Sequence[Media],
    top_k: int = 5,
    scorer: str | None = None,
) -> list[dict[str, Any]]:
    """Text -> image retrieval: the top-k images (or clips) of a folder or list for one sentence."""
    p = _as_predictor(p)
    media = list_media(images) if isinstance(images, (str, Path)) else list(images)
    scores = _pair_scores(p, media, [sentence], _scorer(p, scorer))[:, 0]
    order = torch.argsort(scores, descending=True, stable=True)[:top_k]
    return [{"image": str(media[int(i)]), "score": float(scores[i]), "rank": r + 1} for r, i in enumerate(order)]


@torch.no_grad()
def rank_texts(
    p: Predictor | str | Path, image: Media, sentences: Sequence[str], top_k: int = 5, scorer: str | None = None
) -> list[dict[str, Any]]:
    """Image -> text retrieval: the top-k sentences for one image (or clip)."""
    p = _as_predictor(p)
    if not sentences:
        raise DataError("no sentences to rank")
    scores = _pair_scores(p, [image], list(sentences), _scorer(p, scorer))[0]
    order = torch.argsort(scores, descending=True, stable=True)[:top_k]
    return [{"text": sentences[int(i)], "score": float(scores[i]), "rank": r + 1} for r, i in enumerate(order)]


def read_sentences(path: str | Path) -> list[str]:
    """One sentence per line (blank lines skipped), or a JSON list of strings (a `.json` file).

    Read exactly (common/textfile), as the format readers read annotations: UTF-8, or UTF-8/16/32 behind
    a byte-order mark (removed, so the first sentence does not start with U+FEFF); bytes in another
    encoding, an empty file, NUL characters (UTF-16 saved without its mark, or a binary file) and a JSON
    entry that is not a sentence are one DataError naming the file and the line or entry."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"sentence file {path} does not exist")
    if path.suffix.lower() == ".json":
        fix = "save it as a UTF-8 JSON list of strings"
        data = load_json(path, fix=fix)
        if not isinstance(data, list) or not data:
            raise DataError(
                f"{path}: expected a JSON list of sentences (strings), got "
                f"{'an empty list' if data == [] else type(data).__name__}; {fix}"
            )
        for index, sentence in enumerate(data):
            if not isinstance(sentence, str) or not sentence.strip() or "\x00" in sentence:
                raise DataError(f"{path}, entry {index}: expected a sentence, got {sentence!r:.60}; {fix}")
        return data
    fix = "save it as UTF-8 text, one sentence per line"
    text = read_text(path, fix=fix, empty_fix=fix)
    sentences = []
    for lineno, line in enumerate(text.split("\n"), 1):
        if "\x00" in line:
            raise DataError(
                f"{path}, line {lineno}: NUL characters: the file is UTF-16 without a byte-order "
                f"mark, or not text at all; {fix}"
            )
        if line.strip():
            sentences.append(line.strip())
    return sentences
