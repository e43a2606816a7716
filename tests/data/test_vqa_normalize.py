"""The vocabulary writer's normaliser and the answer vocabulary's class order, as the official writer.

The expected outputs below were worked out by hand from the rules of the official
`glossary.normalize_word` (see sclbench/data/formats/vqa_normalize.py), not produced by running it.
"""

import json

import pytest
from vqa_nlvr2_builders import vqa_docs, write_vqa

from sclbench.data.formats import AnswerVocab, read_vqa
from sclbench.data.formats.vqa_normalize import CONTRACTIONS, normalize_answer
from sclbench.errors import DataError

EXPECTED = [
    # number words (before the article test), articles, case, white space
    ("Two", "2"),
    ("none", "0"),
    ("None of the above", "0 of above"),
    ("one two three", "1 2 3"),
    ("Ten Two", "10 2"),
    ("zero", "0"),
    ("tennis", "tennis"),
    ("the", ""),
    ("an", ""),
    ("", ""),
    ("An apple", "apple"),
    ("The End", "end"),
    ("UPPER", "upper"),
    ("  spaced   out  ", "spaced out"),
    # periods: removed unless a digit follows; at most 32 of them
    ("the dog.", "dog"),
    ("end.", "end"),
    ("1.5", "1.5"),
    ("3.14.", "3.14"),
    ("2.0.", "2.0"),
    ("e.g.", "eg"),
    ("mr. smith", "mr smith"),
    ("a.m.", "am"),
    ("...", ""),
    ("x." * 40, "x" * 32 + "x." * 8),
    # punctuation: deleted when next to a space in the original (or a digit,digit anywhere), else a space
    ("1,000", "1000"),
    ("1,5", "15"),
    ("1,000 dollars!", "1000 dollars"),
    ("red, white", "red white"),
    ("red,white", "red white"),
    ("red-white", "red white"),
    ("t-shirt", "t shirt"),
    ("a-b", "b"),
    ("- dash", "dash"),
    ("yes!", "yes"),
    ("what?!", "what"),
    ("A cat (big)", "cat big"),
    ("left/right", "left right"),
    ("left / right", "left right"),
    ("@home", "home"),
    ('he said "hi"', "he said hi"),
    ("a_b", "b"),
    ("x\\y", "x y"),
    ("semi;colon", "semi colon"),
    ("5:30", "5:30"),
    ("tom's", "tom's"),
    ("£5", "£5"),
    ("[1]", "1"),
    ("{a}", ""),
    ("<=>", ""),
    # contractions: exactly the official spellings, oddities included
    ("dont", "don't"),
    ("Dont", "don't"),
    ("cant", "can't"),
    ("can't", "can't"),
    ("whats up", "what's up"),
    ("hes", "he's"),
    ("couldnt've", "couldn't've"),
    ("couldn'tve", "couldn't've"),
    ("couldntve", "couldntve"),
    ("hed've", "he'd've"),
    ("hedve", "hedve"),
    ("lets", "lets"),
    ("let's", "let's"),
    ("shes", "shes"),
    ("she's", "she's"),
    ("somebody'd", "somebodyd"),
    ("somebodyd", "somebodyd"),
    ("Im", "im"),
    ("ive", "ive"),
    ("twas", "'twas"),
    ("yall'll", "y'all'll"),
    ("y'allll", "y'all'll"),
    ("yallll", "yallll"),
    ("ow's'at", "'ow's'at"),
    ("oclock", "o'clock"),
    ("12 o'clock", "12 o'clock"),
    ("wasn't", "wasn't"),
    ("the dont", "don't"),
    ("a cant b", "can't b"),
]


@pytest.mark.parametrize("raw,expected", EXPECTED)
def test_normaliser_matches_the_official_rules(raw, expected):
    assert normalize_answer(raw) == expected


def test_contraction_table_has_the_official_size_and_oddities():
    assert len(CONTRACTIONS) == 120
    assert CONTRACTIONS["somebody'd"] == "somebodyd" and "somebodyd" not in CONTRACTIONS
    assert {"Im", "Ive", "Id've", "I'dve"} <= set(CONTRACTIONS)  # listed, but never match a lower-cased word
    assert not {"lets", "shes", "hedve", "couldntve"} & set(CONTRACTIONS)


def test_vocabulary_and_scoring_tables_agree():
    """The official writer's table and vqaEval's are the same list; sclbench keeps them equal."""
    from sclbench.metrics.vqa import CONTRACTIONS as SCORING

    assert CONTRACTIONS == SCORING


# ---- class order -------------------------------------------------------------------------------
def _with_answers(split, answers):
    qdoc, adoc = vqa_docs(split, images=tuple(range(1, len(answers) + 1)), per_image=1)
    for ann, answer in zip(adoc["annotations"], answers):
        ann["multiple_choice_answer"] = answer
    return qdoc, adoc


def test_vocabulary_in_first_seen_order_train_then_val(tmp_path):
    # frequencies: yes 3, 2 3 (from "two"/"2"), blue 2, red 3 -- first seen: blue, yes, 2, red (val adds red)
    train = ["Blue", "yes", "two", "Yes", "2", "blue.", "yes", "green"]
    val = ["red", "2", "red", "Red", "green"]
    write_vqa(tmp_path, "train", *_with_answers("train", train))
    write_vqa(tmp_path, "val", *_with_answers("val", val))
    vocab = AnswerVocab.from_annotations(tmp_path, min_count=2)
    assert vocab.answers == ["blue", "yes", "2", "green", "red"]
    assert vocab.index == {"blue": 0, "yes": 1, "2": 2, "green": 3, "red": 4}
    assert AnswerVocab.from_annotations(tmp_path, min_count=3).answers == ["yes", "2", "red"]
    # from records in annotation order: the same classes in the same order
    records = read_vqa(tmp_path, "train") + read_vqa(tmp_path, "val")
    assert AnswerVocab.build(records, min_count=2).answers == vocab.answers
    with pytest.raises(DataError, match="no answer occurs 9 times"):
        AnswerVocab.from_annotations(tmp_path)


def test_vocabulary_counts_every_annotation_even_without_image(tmp_path):
    """The official writer counts answers from the annotation files, images or not."""
    write_vqa(tmp_path, "train", *_with_answers("train", ["cat", "dog", "cat"]))
    write_vqa(tmp_path, "val", *_with_answers("val", ["dog"]))
    for image in (tmp_path / "train2014").iterdir():
        image.unlink()
    assert AnswerVocab.from_annotations(tmp_path, min_count=2).answers == ["cat", "dog"]


def test_official_head_maps_class_for_class(tmp_path):
    """A head trained with the official ans2label gives class i = answer i of sclbench's vocabulary."""
    answers = ["no", "Yes", "no", "2", "yes", "two", "no", "ONE", "1"]
    write_vqa(tmp_path, "train", *_with_answers("train", answers))
    write_vqa(tmp_path, "val", *_with_answers("val", ["1"]))
    # official: normalised answers in first-seen order, kept if seen >= 2 times
    official_label2ans = ["no", "yes", "2", "1"]
    vocab = AnswerVocab.from_annotations(tmp_path, min_count=2)
    assert vocab.answers == official_label2ans
    vocab.save(tmp_path / "vocab.json")
    assert AnswerVocab.load(tmp_path / "vocab.json").answers == official_label2ans


@pytest.mark.parametrize(
    "doc,match",
    [
        ([], "expected a JSON object"),
        ({"answers": []}, "empty"),
        ({"answers": ["a", 3]}, r"answers\[1\]: should be a string"),
        ({"answers": ["a", "b", "a"]}, r"answers\[2\]: 'a' already is answer 0"),
        ({"labels": []}, "missing field 'answers'"),
    ],
)
def test_damaged_vocabulary_file(tmp_path, doc, match):
    path = tmp_path / "answer_vocab.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(DataError, match=match):
        AnswerVocab.load(path)
