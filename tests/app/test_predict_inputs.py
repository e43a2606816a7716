"""predict's own inputs: a sentences file is read exactly (one error naming the file and line, a byte-order
mark removed), and an in-memory picture is decoded as the datasets decode a file (records.to_rgb)."""

from __future__ import annotations

import codecs
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from sclbench.app.predict import Predictor, read_sentences
from sclbench.errors import DataError


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-32"])
def test_sentences_in_every_marked_encoding(tmp_path, encoding):
    path = tmp_path / "s.txt"
    path.write_bytes("a red circle\r\n\n  a blue squäre  \n".encode(encoding))
    assert read_sentences(path) == ["a red circle", "a blue squäre"]  # no U+FEFF on the first sentence
    js = tmp_path / "s.json"
    js.write_bytes(json.dumps(["one", "twö"], ensure_ascii=False).encode(encoding))
    assert read_sentences(js) == ["one", "twö"]


# damage -> (bytes of a .txt file, words of the message besides the path)
TEXT_DAMAGE = {
    "latin-1 on line 2": ("one\ntwö\n".encode("latin-1"), ["line 2", "not UTF-8"]),
    "random bytes": (bytes(range(128, 256)), ["line 1", "not UTF-8"]),
    "utf-16 without mark": ("one\ntwo\n".encode("utf-16-le"), ["line 1", "NUL", "UTF-16"]),
    "utf-16 cut short": ("one\ntwo\n".encode("utf-16")[:-1], ["not UTF-16"]),
    "empty": (b"", ["is empty"]),
    "blank lines only": (b"\n \n\t\n", ["is empty"]),
    "a second mark (two files joined)": (codecs.BOM_UTF8 + b"one\n" + codecs.BOM_UTF8 + b"two\n", ["line 2", "mark"]),
}


@pytest.mark.parametrize("damage", sorted(TEXT_DAMAGE))
def test_a_damaged_sentences_file_is_one_error(tmp_path, damage):
    data, words = TEXT_DAMAGE[damage]
    path = tmp_path / "sentences.txt"
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        read_sentences(path)
    message = str(err.value)
    assert message.startswith(str(path)) and "\n" not in message, message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    "data, words",
    [
        (b'["a", "a"', ["malformed JSON"]),
        (b'{"a": 1}', ["expected a JSON list", "dict"]),
        (b"[]", ["empty list"]),
        (b'["a", 3]', ["entry 1", "3"]),
        (b'["a", " "]', ["entry 1"]),
        (b'[{"t": 1, "t": 2}]', ["occurs twice"]),
        ('["é"]'.encode("latin-1"), ["not UTF-8"]),
    ],
)
def test_a_damaged_json_sentences_file_is_one_error(tmp_path, data, words):
    path = tmp_path / "sentences.json"
    path.write_bytes(data)
    with pytest.raises(DataError) as err:
        read_sentences(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message and all(w in message for w in words), message


class _Model(torch.nn.Module):
    config = SimpleNamespace(image_size=32, max_text_len=8)


def _picture(mode: str) -> Image.Image:
    ramp = np.linspace(0, 1, 48 * 40).reshape(40, 48)
    if mode in ("I;16", "I"):
        deep = Image.fromarray((ramp * 65535).astype(np.uint16))  # mode I;16
        assert deep.mode == "I;16"
        return deep if mode == "I;16" else deep.convert("I")
    rgb = Image.fromarray((np.stack([ramp, ramp[::-1], ramp * 0.5], -1) * 255).astype(np.uint8))
    return rgb.quantize(16) if mode == "P" else rgb.convert(mode)


@pytest.mark.parametrize("mode", ["I;16", "I", "P", "LA", "RGBA", "L", "1", "CMYK"])
def test_an_in_memory_picture_decodes_as_its_file(tmp_path, mode):
    """The same picture given as a PIL image and as a file gives the same pixels: both go through to_rgb
    (16-bit greyscale scaled, not clipped to white by convert('RGB'))."""
    predictor = Predictor(model=_Model(), tokenizer=None, task="f30k")
    image = _picture(mode)
    path = tmp_path / ("p.tiff" if mode in ("CMYK", "I") else "p.png")
    image.save(path)
    in_memory, from_file = predictor.pixels(image), predictor.pixels(path)
    assert in_memory.shape == from_file.shape == (1, 1, 3, 32, 32)
    torch.testing.assert_close(in_memory, from_file, rtol=0, atol=1e-6)
    if mode.startswith("I"):  # a 16-bit ramp keeps its range: dark at the top, bright at the bottom
        grey = in_memory[0, 0, 0]
        assert grey[:4].mean() < grey[-4:].mean() - 2.0
