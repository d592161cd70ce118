"""tfgrow/errors.py: the first line or paragraph of an exception quoted in a message."""

import re

from tfgrow.errors import first_line, first_paragraph


def test_first_line_is_the_first_line_without_surrounding_whitespace():
    assert first_line(ValueError("  Shapes differ.\nDetails follow.")) == "Shapes differ."


def test_an_empty_message_is_quoted_by_repr_or_the_callers_choice():
    # `raise RuntimeError()` has no message; the quote must still say what was raised.
    assert first_line(RuntimeError()) == "RuntimeError()"
    assert first_line(RuntimeError(" \n"), if_empty="RuntimeError") == "RuntimeError"


def test_first_paragraph_joins_the_lines_before_the_first_blank_line():
    error = ValueError("\nExpected a file.\n  Received: a folder.\n\nHint.")
    assert first_paragraph(error) == "Expected a file. Received: a folder."


def test_first_paragraph_passes_over_the_lines_it_is_told_to_skip():
    # gin appends indented context lines; a skipped line does not end the paragraph.
    error = TypeError("f() missing 1 argument\n  In call to configurable 'f'\nSee README.")
    skip = re.compile(r"^\s+In call to configurable").match
    assert first_paragraph(error, skip_line=skip) == "f() missing 1 argument See README."


def test_first_paragraph_prefers_the_message_attribute_over_str():
    # TensorFlow's OpError: str() appends the op's stack trace to `message`.
    error = RuntimeError("Op failed. Original stack trace for 'x': ...")
    error.message = "Op failed."
    assert first_paragraph(error) == "Op failed."
