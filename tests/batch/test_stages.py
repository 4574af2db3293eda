"""Pipeline stages on threads: items arrive in order, an error reaches the consumer, and a
consumer that stops early stops every stage before it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from modelrail.batch.stages import Stage


def test_items_pass_two_stages_in_order() -> None:
    doubled = (n * 2 for n in Stage(iter(range(1000)), "first", 1))
    assert list(Stage(doubled, "second")) == [n * 2 for n in range(1000)]


def test_an_error_of_a_stage_is_raised_to_the_consumer() -> None:
    def failing() -> Iterator[int]:
        yield 1
        raise ValueError("column 'f3' is not a number")

    got: list[int] = []
    with pytest.raises(ValueError, match="'f3'"):
        got.extend(Stage(Stage(failing(), "reader", 1), "scorer"))
    assert got == [1]


def test_a_consumer_that_stops_early_stops_every_stage_before_it() -> None:
    closed = threading.Event()

    def endless() -> Iterator[int]:
        try:
            n = 0
            while True:
                yield n
                n += 1
        finally:
            closed.set()

    before = set(threading.enumerate())
    stages = Stage(Stage(endless(), "reader", 1), "scorer")
    assert [next(stages) for _ in range(5)] == [0, 1, 2, 3, 4]
    stages.close()
    assert closed.wait(5)
    assert not [t for t in set(threading.enumerate()) - before if t.is_alive()]


def test_a_stage_works_ahead_before_it_is_read_and_stops_unread() -> None:
    made = threading.Event()
    closed = threading.Event()

    def items() -> Iterator[int]:
        try:
            made.set()
            yield 1
            yield 2
        finally:
            closed.set()

    with Stage(items(), "reader", 1):
        assert made.wait(5)  # started without anyone asking for an item
    assert closed.wait(5)
