"""The JSON columns' encoder (storage/json_text.py): orjson where it can, the standard library where it
cannot, and every value reads back as the standard library would have read what it wrote."""

from __future__ import annotations

import json
import math

import pytest

from athena_server.storage import json_text

VALUES = [
    {"a": 1, "b": [1.5, -0.0, 1e-7, 1e21, 0.1 + 0.2], "c": None, "d": True},
    {"text": 'naïve ☃ \u2028 \x00 "quoted" \\ slash'},
    {"nested": {"deep": [{"x": "y"}, [], {}]}, "n": 2**63 - 1, "m": -(2**63)},
    [],
    "plain",
]


@pytest.mark.parametrize("value", VALUES)
def test_values_read_back_as_written(value: object) -> None:
    text = json_text.dumps(value)
    assert json_text.loads(text) == value
    assert json.loads(text) == value  # any reader of the column reads it alike


def test_written_compact_by_orjson() -> None:
    assert json_text.dumps({"a": [1, "b"]}) == '{"a":[1,"b"]}'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ({1: "int key"}, {"1": "int key"}),  # keys that are not strings: the standard library's rules
        ({"big": 2**70}, {"big": 2**70}),  # beyond 64 bits
    ],
)
def test_what_orjson_refuses_goes_through_the_standard_library(value: object, expected: object) -> None:
    text = json_text.dumps(value)
    assert text == json.dumps(value)
    assert json_text.loads(text) == expected


def test_nan_tokens_stored_by_earlier_versions_still_read() -> None:
    value = json_text.loads('{"x": NaN, "y": Infinity}')
    assert math.isnan(value["x"]) and value["y"] == math.inf


def test_nan_is_now_written_as_null() -> None:
    assert json_text.loads(json_text.dumps({"x": math.nan})) == {"x": None}
