"""Answer normalisation used to build the VQA v2 answer vocabulary (ViLT/METER/SCL `write_vqa`).

Same rules as the official VQA tools' answer processing, applied the way the ViLT writer applies
them (always, to `multiple_choice_answer`): punctuation handling, lower-case, number words -> digits,
articles dropped, contractions restored, commas removed. Two quirks are kept for parity because they
change which strings end up in the 3,129-answer vocabulary:
- the period rule removes a '.' that is not followed by a digit (the official look-behind is
  mistyped as a look-ahead, so "1.5" keeps its dot but "end." loses it);
- that substitution is called with `re.UNICODE` (= 32) as its *count*, so at most 32 periods go.
"""

from __future__ import annotations

import itertools
import re

_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
          "?", "!"]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
_NUMBERS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
            "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
_ARTICLES = {"a", "an", "the"}

# Contractions as answers are typed without apostrophes ("dont"); the map restores them. Every
# spelling with some apostrophes dropped maps to the full form (e.g. "couldntve", "couldn'tve").
# Keys starting with a capital "I" in the official table can never match lower-cased words, so
# the I-contractions are left out: same effective behaviour.
_CONTRACTED = """ain't aren't can't could've couldn't couldn't've didn't doesn't don't hadn't hadn't've
hasn't haven't he'd he'd've he's how'd how'll how's isn't it'd it'd've it'll let's ma'am mightn't
mightn't've might've mustn't must've needn't not've o'clock oughtn't 'ow's'at shan't she'd've she's
should've shouldn't shouldn't've somebody'd somebody'd've somebody'll somebody's someone'd
someone'd've someone'll someone's something'd something'd've something'll that's there'd there'd've
there're there's they'd they'd've they'll they're they've 'twas wasn't we'd've we've weren't what'll
what're what's what've when's where'd where's where've who'd who'd've who'll who's who've why'll
why're why's won't would've wouldn't wouldn't've y'all y'all'll y'all'd've you'd you'd've you'll
you're you've""".split()


def _contraction_map() -> dict[str, str]:
    table = {}
    for full in _CONTRACTED:
        parts = full.split("'")
        # every way of keeping or dropping each apostrophe, except keeping all of them
        for keep in itertools.product((True, False), repeat=len(parts) - 1):
            if all(keep):
                continue
            spelled = parts[0] + "".join(("'" if k else "") + p for k, p in zip(keep, parts[1:]))
            table.setdefault(spelled, full)
    return table


_CONTRACTIONS = _contraction_map()


def normalize_answer(answer: str) -> str:
    """Normalise one answer string the way the vocabulary writer does."""
    text = answer
    separated = _COMMA_BETWEEN_DIGITS.search(answer) is not None
    for p in _PUNCT:
        # a mark next to a space (or any digit-comma-digit in the answer) is dropped, else it splits words
        if separated or (p + " " in answer or " " + p in answer):
            text = text.replace(p, "")
        else:
            text = text.replace(p, " ")
    text = _PERIOD.sub("", text, re.UNICODE)  # count=32: official quirk, see module docstring
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    words = [_CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words).replace(",", "")
