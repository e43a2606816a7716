"""docs/reproduce.md: generated from the cards (no drift), every paper number with its commands, and
every command one the CLI accepts (parsed by the real click commands, not run)."""

import re
import shlex
from pathlib import Path

import pytest
import typer

from sclbench.app.reproduce import render_guide, split_label
from sclbench.cards import load_card, packaged_cards_dir
from sclbench.results.paper import card_paper_numbers

DOC = Path(__file__).resolve().parents[2] / "docs" / "reproduce.md"


@pytest.fixture(scope="module")
def guide():
    return render_guide()


def _blocks(text: str) -> dict[str, str]:
    """'#### MODEL · task · split' heading -> the text up to the next heading of any level."""
    parts = re.split(r"^(#{2,4} .*)$", text, flags=re.M)
    return {parts[i].strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2) if parts[i].startswith("#### ")}


def _command_lines(text: str) -> list[str]:
    lines = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        lines += [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]
    return lines


def test_committed_guide_is_the_generated_one(guide):
    assert DOC.is_file(), "docs/reproduce.md missing: python -m sclbench.app.reproduce > docs/reproduce.md"
    assert DOC.read_text() == guide, (
        "docs/reproduce.md drifted from the cards: regenerate it with "
        "python -m sclbench.app.reproduce > docs/reproduce.md"
    )


def test_every_paper_number_has_a_block_with_an_eval_command(guide):
    blocks = _blocks(guide)
    names = {"scl": "SCL", "meter": "METER"}
    cards = [load_card(p) for p in sorted(packaged_cards_dir().glob("*.yaml"))]
    rows = [r for c in cards for r in card_paper_numbers(c.name, c.section("paper"))]
    assert len(rows) >= 20  # the cards hold SCL and METER numbers for six tasks
    for row in rows:
        label = split_label(load_card(row.task), row.split)
        head = f"#### {names.get(row.model, row.model)} · {row.task} · {label} ("
        heads = [h for h in blocks if h.startswith(head)]
        assert len(heads) == 1, (row, heads)
        body = blocks[heads[0]]
        assert f"{row.metric} {row.value:g}" in body, row
        evals = [c for c in _command_lines(body) if re.search(rf"sclbench eval {row.task}\b", c)]
        assert len(evals) == 1, (row, body)
        assert "--split" in evals[0] and "--results" in evals[0]
        assert "sclbench table" in body
        if row.model == "scl":  # fine-tuned here: the card section holds the fine-tuning command
            section = guide.split(f"\n## {row.task}: ", 1)[1].split("\n## ", 1)[0]
            assert f"sclbench finetune {row.task} " in section and "--ckpt scl-pretrain" in section


def test_guide_is_deterministic_and_needs_no_measured_step_time(guide):
    assert render_guide() == guide
    assert "not measured" in guide and "benchmarks/gpu.sh" in guide


def _parse(words: list[str]):
    """The context of the sclbench subcommand `words` names, parsed by the real CLI (nothing runs).
    typer >= 0.29 vendors click, so groups are recognised by their methods, not by click's classes."""
    from sclbench.cli import app

    root = typer.main.get_command(app)
    cmd, ctx, args = root, root.make_context("sclbench", list(words), resilient_parsing=True), list(words)
    while hasattr(cmd, "resolve_command"):
        name, cmd, args = cmd.resolve_command(ctx, args)
        assert cmd is not None, f"no sclbench command {name!r}"
        if hasattr(cmd, "resolve_command"):
            ctx = cmd.make_context(name, list(args), parent=ctx, resilient_parsing=True)
    return cmd.make_context(cmd.name, list(args), parent=ctx)


def test_the_parser_refuses_a_wrong_command():
    from sclbench.cli._click import click_exception_types

    assert _parse(["eval", "vqa", "splits.test=test", "--split", "test"]).params["overrides"] == ["splits.test=test"]
    for bad in (["eval", "vqa", "--bogus", "1"], ["ckpt", "fetch"], ["finetune", "vqa", "--precision"]):
        with pytest.raises(click_exception_types()):
            _parse(bad)


def test_every_command_parses_with_the_real_cli(guide, tmp_path, monkeypatch):
    lines = _command_lines(guide)
    assert len(lines) > 20
    monkeypatch.chdir(tmp_path)  # the CLI checks that the data and run folders exist: make them here
    for line in lines:
        for word in shlex.split(line):
            if word.startswith(("data/", "runs/", "results/")):
                (tmp_path / word).mkdir(parents=True, exist_ok=True)
    for line in lines:
        words = shlex.split(line)
        if words[0] == "torchrun":
            assert words[1] == "--nproc_per_node=8" and words[2:4] == ["-m", "sclbench"], line
            words = words[4:]
        else:
            assert words[0] == "sclbench", line
            words = words[1:]
        ctx = _parse(words)  # raises on an unknown command or option
        task = ctx.params.get("task")
        if task:  # every override names a key the card holds
            load_card(task, list(ctx.params.get("overrides") or []), valid_keys=set())


def test_split_roles_match_the_cards(guide):
    # NLVR2 dev is the val role, test-P the test role; VQA test-std needs splits.test=test
    blocks = _blocks(guide)
    dev = next(b for h, b in blocks.items() if h.startswith("#### SCL · nlvr2 · dev"))
    assert "--split val" in dev
    std = next(b for h, b in blocks.items() if h.startswith("#### SCL · vqa · test-std"))
    assert "splits.test=test" in std and "--submission" in std
    f30k = next(b for h, b in blocks.items() if h.startswith("#### SCL · f30k"))
    assert "--mode exhaustive" in f30k and "runs/f30k/final" in f30k
