"""quantbridge.json_text.compact gives the standard library's canonical text, byte for byte but for the
exponent form of some floats below 1e-4 (the same numbers), including where orjson alone would differ."""

from __future__ import annotations

import dataclasses
import json
import math
import random
import struct
from datetime import UTC, datetime

import numpy as np
import pytest

from quantbridge.json_text import compact


def standard(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


@dataclasses.dataclass
class Point:
    x: float


class Text(str):
    pass


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [1.5, -0.0, 2**63 - 1, -(2**63)]},
        {"edge": 1e-4, "below": 9.999999999999999e15, "price": 49.95894231367083, "hex": "1e16 0e5"},
        {"nan": math.nan, "inf": math.inf, "ninf": -math.inf},
        {"none": None, "t": True, "f": False},
        {"text": 'caf\u00e9 \u202e \x00\x1f\x7f "q" \\ /', "emoji": "\U0001f600"},
        {"when": datetime(2026, 12, 1, 19, 55, tzinfo=UTC), "point": Point(1.0)},
        {"np": np.float64(1.5), "npi": np.int64(3), "arr": np.arange(2)},
        {"big": 2**70, "tuple": (1, "a"), "sub": Text("x")},
        {3: "int keys", 1: "sorted as numbers"},
        {"nested": {"z": {"y": [{"b": 2, "a": 1}]}}},
        [],
        "plain",
        12.25,
    ],
)
def test_compact_when_orjson_would_differ_then_same_text_as_standard_library(value: object) -> None:
    assert compact(value) == standard(value)


def exponent_form(number: float) -> bool:
    return math.isfinite(number) and 0 < abs(number) < 1e-4


def test_compact_when_float_below_1e_4_then_same_number_written_without_exponent() -> None:
    text = compact({"x": 5.948084951086057e-05})
    assert text == '{"x":0.00005948084951086057}' != standard({"x": 5.948084951086057e-05})
    assert json.loads(text) == {"x": 5.948084951086057e-05}


def test_compact_when_fuzzed_floats_and_ascii_text_then_same_text_as_standard_library() -> None:
    rnd = random.Random(20261201)
    for i in range(20_000):
        kind = i % 3
        if kind == 0:  # any bit pattern: subnormals, huge, NaN, infinities
            number = struct.unpack("d", struct.pack("Q", rnd.getrandbits(64)))[0]
        elif kind == 1:
            number = rnd.uniform(-1, 1) * 10 ** rnd.randint(-8, 20)
        else:
            number = round(rnd.uniform(0, 1e6), rnd.randint(0, 8))
        word = "".join(chr(rnd.randint(0, 127)) for _ in range(rnd.randint(0, 8)))
        value = {word: [number, word, i], "k": {"v": number}}
        if exponent_form(number):
            assert json.loads(compact(value)) == json.loads(standard(value)), value
        else:
            assert compact(value) == standard(value), value
