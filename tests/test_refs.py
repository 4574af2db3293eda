from __future__ import annotations

import pytest

from modelrail.errors import InvalidReferenceError
from modelrail.refs import Ref


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("pets-classifier", Ref("pets-classifier")),
        ("pets-classifier:7", Ref("pets-classifier", version=7)),
        ("pets-classifier@prod", Ref("pets-classifier", environment="prod")),
        ("  m.v_2  ", Ref("m.v_2")),
    ],
)
def test_references_parse_and_print_back(text: str, expected: Ref) -> None:
    parsed = Ref.parse(text)
    assert parsed == expected
    assert Ref.parse(str(parsed)) == parsed


@pytest.mark.parametrize(
    "text", ["", ":3", "m:0", "m:-1", "m:1.5", "m@", "m@pr od", "m:1@prod", "a b"]
)
def test_malformed_references_name_the_text(text: str) -> None:
    with pytest.raises(InvalidReferenceError, match="reference"):
        Ref.parse(text)
