"""The part of an exception's message that goes into another message: its first line or
paragraph. Every package quotes errors it catches this way (the launchers' one-paragraph
`tfgrow: error:` line, input checks, checkpoints, datasets, strategies), so this module imports
nothing. The training run's own exception classes are in `tfgrow.train.errors`.
"""


def first_line(error, if_empty=None):
    """The first line of an exception's message, without surrounding whitespace.

    Args:
        error: the exception to quote.
        if_empty: what to return when the message is empty or blank; `repr(error)` if None.

    Returns:
        A string with no line break.

    Example:
        >>> first_line(ValueError("Shapes differ.\\nDetails follow."))
        'Shapes differ.'
    """
    text = str(error).strip()
    if text:
        return text.splitlines()[0]
    return repr(error) if if_empty is None else if_empty


def first_paragraph(error, skip_line=None):
    """An exception's message up to its first blank line, joined into one line.

    Blank lines before the paragraph are passed over; so are the lines `skip_line(line)` is true
    for (e.g. the context lines gin adds to an error it re-raises). A TensorFlow `OpError` is
    quoted by its `message`, without the op's stack trace that `str()` appends.

    Example:
        >>> first_paragraph(ValueError("\\nExpected a file.\\n  Received: a folder.\\n\\nHint."))
        'Expected a file. Received: a folder.'
    """
    message = getattr(error, "message", None) or str(error) or repr(error)
    paragraph = []
    for line in str(message).splitlines():
        if skip_line is not None and skip_line(line):
            continue
        if not line.strip():
            if paragraph:
                break
            continue
        paragraph.append(line.strip())
    return " ".join(paragraph)
