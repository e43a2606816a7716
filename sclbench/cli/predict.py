"""`sclbench predict vqa|nlvr2|images|texts` and `sclbench explain`: thin wrappers around
`sclbench.app.predict` and `sclbench.app.explain`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from sclbench.cli._params import COUNT, INPUT_DIR, INPUT_FILE, INPUT_PATH, OUTPUT_FILE, SIGNED, device_name, utf8_text

predict_app = typer.Typer(no_args_is_help=True, help="Ask a checkpoint: VQA answers, NLVR2 verdicts, rankings.")

CKPT = typer.Option(..., "--ckpt", "-c", help="checkpoint: registered name, sclbench folder or official file")
TASK = typer.Option(None, "--task", help="model task (default: the checkpoint's config.json; needed for .ckpt files)")
TOKENIZER = typer.Option(None, "--tokenizer", help="tokenizer folder (default: the one saved with the weights)")
DEVICE = typer.Option(None, "--device", help="cpu, cuda, cuda:1 ... (default: cuda when available)", parser=device_name)
TOP_K = typer.Option(5, "--top-k", "-k", help="how many answers / items to show", **COUNT)
JSON = typer.Option(False, "--json", help="print the result as JSON")


def _show(result: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for line in lines:
            typer.echo(line)


def _predictor(ckpt: str, task: str | None, tokenizer: str | None, device: str | None, **kw: Any):
    from sclbench.app.predict import load_predictor

    return load_predictor(ckpt, task=task, tokenizer=tokenizer, device=device, **kw)


@predict_app.command("vqa")
def predict_vqa(
    image: Path = typer.Argument(..., help="image file", **INPUT_FILE),
    question: str = typer.Argument(..., help="the question, quoted", parser=utf8_text),
    ckpt: str = CKPT,
    task: str | None = TASK,
    tokenizer: str | None = TOKENIZER,
    answers: Path | None = typer.Option(
        None,
        "--answers",
        help="answer_vocab.json, or the VQA data root holding it (default: the one beside the weights)",
        **INPUT_PATH,
    ),
    top_k: int = TOP_K,
    device: str | None = DEVICE,
    as_json: bool = JSON,
) -> None:
    """Top-k answers to a question about an image, with scores (sigmoid of the answer logits)."""
    from sclbench.app.predict import answer_question

    p = _predictor(ckpt, task, tokenizer, device, answers=answers)
    result = answer_question(p, image, question, top_k)
    _show(result, as_json, [f"{r['score']:.3f}  {r['answer']}" for r in result])


@predict_app.command("nlvr2")
def predict_nlvr2(
    left: Path = typer.Argument(..., help="left image", **INPUT_FILE),
    right: Path = typer.Argument(..., help="right image", **INPUT_FILE),
    statement: str = typer.Argument(..., help="the statement, quoted", parser=utf8_text),
    ckpt: str = CKPT,
    task: str | None = TASK,
    tokenizer: str | None = TOKENIZER,
    device: str | None = DEVICE,
    as_json: bool = JSON,
) -> None:
    """Is the statement true of the image pair? With the probability of true."""
    from sclbench.app.predict import verify_statement

    result = verify_statement(_predictor(ckpt, task, tokenizer, device), left, right, statement)
    _show(result, as_json, [f"{'true' if result['prediction'] else 'false'} (P(true) = {result['prob_true']:.3f})"])


@predict_app.command("images")
def predict_images(
    sentence: str = typer.Argument(..., help="the query sentence, quoted", parser=utf8_text),
    folder: Path = typer.Argument(..., help="folder of images or clips (searched recursively)", **INPUT_DIR),
    ckpt: str = CKPT,
    task: str | None = TASK,
    tokenizer: str | None = TOKENIZER,
    scorer: str | None = typer.Option(
        None,
        "--scorer",
        help="rank (fine-tuned retrieval head), itm or contrastive (default: the best head the checkpoint has)",
    ),
    frames: int | None = typer.Option(None, "--frames", help="frames per clip (default: the task card's)", **COUNT),
    top_k: int = TOP_K,
    device: str | None = DEVICE,
    as_json: bool = JSON,
) -> None:
    """Rank the images (or clips) of a folder for a sentence: top-k with scores."""
    from sclbench.app.predict import rank_images

    p = _predictor(ckpt, task, tokenizer, device, num_frames=frames)
    result = rank_images(p, sentence, folder, top_k, scorer)
    _show(result, as_json, [f"{r['rank']:>3}  {r['score']:+.3f}  {r['image']}" for r in result])


@predict_app.command("texts")
def predict_texts(
    image: Path = typer.Argument(..., help="image or clip", **INPUT_PATH),
    sentences: Path = typer.Argument(..., help="file of sentences: one per line, or a JSON list", **INPUT_FILE),
    ckpt: str = CKPT,
    task: str | None = TASK,
    tokenizer: str | None = TOKENIZER,
    scorer: str | None = typer.Option(None, "--scorer", help="rank, itm or contrastive (default: best head)"),
    frames: int | None = typer.Option(None, "--frames", help="frames per clip (default: the task card's)", **COUNT),
    top_k: int = TOP_K,
    device: str | None = DEVICE,
    as_json: bool = JSON,
) -> None:
    """Rank a list of sentences for an image (or clip): top-k with scores."""
    from sclbench.app.predict import rank_texts, read_sentences

    p = _predictor(ckpt, task, tokenizer, device, num_frames=frames)
    result = rank_texts(p, image, read_sentences(sentences), top_k, scorer)
    _show(result, as_json, [f"{r['rank']:>3}  {r['score']:+.3f}  {r['text']}" for r in result])


def register(app: typer.Typer) -> None:
    """Add the `predict` group (vqa, nlvr2, images, texts) and the `explain` verb to the main app."""
    app.add_typer(predict_app, name="predict")
    app.command("explain")(explain)


def explain(
    media: Path = typer.Argument(..., help="image (or clip)", **INPUT_PATH),
    sentence: str = typer.Argument(..., help="the sentence, quoted", parser=utf8_text),
    ckpt: str = CKPT,
    task: str | None = TASK,
    tokenizer: str | None = TOKENIZER,
    word: str | None = typer.Option(None, "--word", "-w", help="also map this word of the sentence", parser=utf8_text),
    space: str = typer.Option(
        "contrastive",
        "--space",
        help="contrastive (ITC projections of the unimodal "
        "tokens), fused (co-attention outputs), gradcam (cross-attention x gradient "
        "of the match score) or occlusion (fall of the match score when a window is "
        "blanked)",
    ),
    layer: int = typer.Option(0, "--layer", help="gradcam: which co-attention layer (0 = first, -1 = last)", **SIGNED),
    stride: int | None = typer.Option(
        None,
        "--stride",
        **COUNT,
        help="occlusion: window step in pixels (default a quarter patch, at most ~25 positions a side)",
    ),
    out: Path = typer.Option(Path("alignment.png"), "--out", "-o", help="the PNG to write", **OUTPUT_FILE),
    frames: int | None = typer.Option(None, "--frames", help="frames per clip (default: the task card's)", **COUNT),
    device: str | None = DEVICE,
) -> None:
    """PNG of the global-to-local alignment: patches vs the sentence (and a word), words vs the image."""
    from sclbench.app.explain import explain_alignment

    path, maps = explain_alignment(
        _predictor(ckpt, task, tokenizer, device, num_frames=frames),
        media,
        sentence,
        out,
        word=word,
        space=space,
        layer=layer,
        stride=stride,
    )
    top = sorted(zip(maps.word_weights, maps.words), reverse=True)[:3]
    typer.echo(f"wrote {path}; words closest to the image: {', '.join(f'{w} ({c:+.2f})' for c, w in top)}")
