"""Answer normalisation used to build the VQA v2 answer vocabulary (ViLT/METER/SCL `write_vqa`).

Equal to the official writer's `glossary.normalize_word` (IIGROUP/SCL `scl/utils/glossary.py`, same
in cd0d819 and 928b1cd), applied the way the writer applies it: always, to `multiple_choice_answer`.
Steps, in the official order:
1. each punctuation mark in turn is deleted when the ORIGINAL answer has it next to a space, or has a
   digit-comma-digit anywhere; otherwise it becomes a space;
2. a '.' not followed by a digit is deleted (the official look-behind is mistyped as a look-ahead, so
   "1.5" keeps its dot but "end." loses it), and the substitution is called with `re.UNICODE` (= 32)
   as its *count*, so at most 32 periods go;
3. lower-case, split on white space, number words -> digits (before the article test, so "none" is
   "0"), articles dropped;
4. each remaining word found in the official contraction table is replaced, exactly as that table
   says — only the spellings it lists, and its oddities kept ("somebody'd" -> "somebodyd"; "lets",
   "shes" and "hedve" are NOT in it; keys with a capital "I" never match a lower-cased word);
5. words joined by one space, commas removed.
The scoring normaliser (`sclbench.metrics.vqa`, the official vqaEval) is a different function (it
normalises only when the human answers disagree) and is kept apart on purpose.
"""

from __future__ import annotations

import re

_PUNCT = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",", "?", "!"]
_PERIOD = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_BETWEEN_DIGITS = re.compile(r"(\d)(,)(\d)")
_NUMBERS = {
    "none": "0",
    "zero": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
    "ten": "10",
}
_ARTICLES = {"a", "an", "the"}

# The official contraction table, written as "result: spelling spelling ..." (each spelling listed
# there maps to the result). Only these spellings are replaced; the lines with a capital "I" are kept
# for completeness although a lower-cased word can never match them.
_TABLE = """
ain't: aint | aren't: arent | can't: cant | could've: couldve | couldn't: couldnt
couldn't've: couldn'tve couldnt've | didn't: didnt | doesn't: doesnt | don't: dont | hadn't: hadnt
hadn't've: hadnt've hadn'tve | hasn't: hasnt | haven't: havent | he'd: hed | he'd've: hed've he'dve
he's: hes | how'd: howd | how'll: howll | how's: hows | I'd've: Id've I'dve | I'm: Im | I've: Ive
isn't: isnt | it'd: itd | it'd've: itd've it'dve | it'll: itll | let's: let's | ma'am: maam
mightn't: mightnt | mightn't've: mightnt've mightn'tve | might've: mightve | mustn't: mustnt
must've: mustve | needn't: neednt | not've: notve | o'clock: oclock | oughtn't: oughtnt
'ow's'at: ow's'at 'ows'at 'ow'sat | shan't: shant | she'd've: shed've she'dve | she's: she's
should've: shouldve | shouldn't: shouldnt | shouldn't've: shouldnt've shouldn'tve
somebodyd: somebody'd | somebody'd've: somebodyd've somebody'dve | somebody'll: somebodyll
somebody's: somebodys | someone'd: someoned | someone'd've: someoned've someone'dve
someone'll: someonell | someone's: someones | something'd: somethingd
something'd've: somethingd've something'dve | something'll: somethingll | that's: thats
there'd: thered | there'd've: thered've there'dve | there're: therere | there's: theres
they'd: theyd | they'd've: theyd've they'dve | they'll: theyll | they're: theyre | they've: theyve
'twas: twas | wasn't: wasnt | we'd've: wed've we'dve | we've: weve | weren't: werent
what'll: whatll | what're: whatre | what's: whats | what've: whatve | when's: whens
where'd: whered | where's: wheres | where've: whereve | who'd: whod | who'd've: whod've who'dve
who'll: wholl | who's: whos | who've: whove | why'll: whyll | why're: whyre | why's: whys
won't: wont | would've: wouldve | wouldn't: wouldnt | wouldn't've: wouldnt've wouldn'tve
y'all: yall | y'all'll: yall'll y'allll | y'all'd've: yall'd've y'alld've y'all'dve
you'd: youd | you'd've: youd've you'dve | you'll: youll | you're: youre | you've: youve
"""


def _contraction_map() -> dict[str, str]:
    table = {}
    for entry in _TABLE.replace("\n", " | ").split("|"):
        if entry.strip():
            result, spellings = entry.split(": ")
            for spelling in spellings.split():
                table[spelling] = result.strip()
    return table


CONTRACTIONS: dict[str, str] = _contraction_map()


def normalize_answer(answer: str) -> str:
    """Normalise one answer string the way the vocabulary writer does (`normalize_word`)."""
    text = answer
    separated = _COMMA_BETWEEN_DIGITS.search(answer) is not None
    for p in _PUNCT:
        # decided from the original answer, not from the text already changed by earlier marks
        if separated or (p + " " in answer or " " + p in answer):
            text = text.replace(p, "")
        else:
            text = text.replace(p, " ")
    text = _PERIOD.sub("", text, int(re.UNICODE))  # count=32: official quirk, see module docstring
    words = [_NUMBERS.get(w, w) for w in text.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in _ARTICLES]
    return " ".join(words).replace(",", "")
