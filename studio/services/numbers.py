"""Numbers as people type them into a form or a spreadsheet, read one way or refused.

The rule, for `4,50`, `4.50`, `1 234,50`, `1,234.50`, `1.234,50` and their kind:

- Digits are 0-9. A sign (`-`, `+` or `−`) may lead.
- `.` or `,` between digits is either the decimal separator (once, the last separator)
  or a group separator (every group after the first exactly three digits). Spaces,
  including no-break and thin spaces, only ever separate groups.
- When both `.` and `,` appear, the last one is the decimal separator. A separator that
  appears twice can only group; one followed by other than three digits can only mark
  the decimals.
- What is left is one `.` or `,` followed by exactly three digits, after one to three
  digits (`4,500`, `1.234`): a thousands separator or a decimal one? That is refused,
  unless the shop's `DECIMAL_SEPARATOR` setting says which it writes. Never a guess that
  turns 4.50 into 450 or 4500.
"""

import re
from decimal import Decimal


class NumberError(ValueError):
    """The text is not a number, or could be read as two; the message says how to write it."""


# Space, no-break space, figure space, thin space, narrow no-break space.
GROUP_SPACES = " \u00a0\u2007\u2009\u202f"
SIGNS = {"-": "-", "\u2212": "-", "+": ""}
TOKENS = re.compile(rf"[0-9]+|[.,]|[{GROUP_SPACES}]")
SPACE = " "


def parse_number(
    text: str, *, example: str, whole: bool = False, decimal_separator: str = ""
) -> Decimal:
    """Return the number `text` spells, or raise NumberError saying how to write it.

    `example` shows a correct spelling in the messages, `whole` says the field takes
    whole numbers only; `decimal_separator` ("." or ",") settles `4,500`-like spellings,
    which are refused without it.
    """
    written = text.strip(GROUP_SPACES + "\t\r\n")
    body = written
    sign = ""
    if body[:1] in SIGNS:
        sign, body = SIGNS[body[0]], body[1:]
    tokens = TOKENS.findall(body)
    if not body or "".join(tokens) != body or not _alternates(tokens):
        kind = "a whole number" if whole else "a number"
        raise NumberError(f"must be {kind} such as {example}.")
    digits = tokens[0::2]
    separators = [SPACE if token in GROUP_SPACES else token for token in tokens[1::2]]
    decimal = _decimal_separator(written, digits, separators, decimal_separator, whole)
    integral, fraction = (digits[:-1], digits[-1]) if decimal else (digits, "")
    if decimal:
        separators = separators[:-1]
    if len(set(separators)) > 1 or (separators and not _grouped(integral)):
        grouped = "1 234 or 1,234,567" if whole else "1 234,50 or 1,234.50"
        raise NumberError(
            f'"{written}" is not a number as written: groups of thousands have three digits, '
            f"as in {grouped}."
        )
    return Decimal(f"{sign}{''.join(integral)}.{fraction or '0'}")


def _alternates(tokens: list[str]) -> bool:
    """Digits and single separators take turns, starting and ending with digits."""
    return len(tokens) % 2 == 1 and all(
        token[0].isdigit() == (index % 2 == 0) for index, token in enumerate(tokens)
    )


def _decimal_separator(
    written: str, digits: list[str], separators: list[str], preferred: str, whole: bool
) -> str | None:
    """Return the separator that marks the decimals, None for a whole number."""
    marks = [mark for mark in separators if mark != SPACE]
    if not marks:
        return None
    last = separators[-1]
    if len(set(marks)) == 2:
        return last
    mark = marks[0]
    if len(marks) > 1 or last != mark:
        return None  # repeated, or followed by space-separated groups: it groups
    if SPACE in separators or len(digits[-1]) != 3:
        return mark
    before = digits[-2]
    if len(separators) > 1 or len(before) > 3 or before.startswith("0"):
        return mark  # `12345,678` or `0,500` cannot be thousands
    if preferred in (".", ","):
        return mark if preferred == mark else None
    after = digits[-1]
    thousands, decimals = int(before + after), Decimal(f"{before}.{after}").normalize()
    how = f"write {thousands} without a separator"
    if not whole:
        how += f", or the decimals as in {before}.{after[:2]} or {before},{after[:2]}"
    raise NumberError(f'"{written}" could mean {thousands} or {decimals}: {how}.')


def _grouped(whole: list[str]) -> bool:
    """Every group after the first has three digits; the first has one to three."""
    first, rest = whole[0], whole[1:]
    return (
        1 <= len(first) <= 3
        and not (first.startswith("0") and rest)
        and all(len(group) == 3 for group in rest)
    )
