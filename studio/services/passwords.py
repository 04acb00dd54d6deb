"""Whether a new password is good enough: long enough, and not easy to guess.

"Easy to guess" is zxcvbn's estimate (Dropbox's, as ported to Python): it knows the 30,000
most common passwords of a 10-million-password leak, English words, names and surnames,
and how people dress them up (l33t, capitals, years and digits added, keyboard walks,
repeats, sequences), so `password`, `Password1234!` and `qwertyuiop12` are all found, where
a plain list of common passwords holds few of 12 characters or more.
"""

from flask import current_app

# zxcvbn's scores run 0-4; 3 is about 10^8 guesses or more ("safely unguessable" online,
# and slow to find offline against scrypt).
MIN_SCORE = 3
# zxcvbn refuses to look at more; the characters after these only make a password stronger.
ESTIMATED_CHARACTERS = 72
ADVICE = "a few words that do not belong together make a strong one"


def min_length() -> int:
    """Return the fewest characters a new password may have (PASSWORD_MIN_LENGTH)."""
    return current_app.config["PASSWORD_MIN_LENGTH"]


def weakness(password: str, username: str) -> str | None:
    """Return why a long-enough password is too easy to guess, or None if it is not."""
    # Imported when a password is set, not when a worker starts: its word lists take 14 MB.
    from zxcvbn import zxcvbn

    estimate = zxcvbn(password[:ESTIMATED_CHARACTERS], user_inputs=[username, "studio"])
    if estimate["score"] >= MIN_SCORE:
        return None
    warning = estimate["feedback"]["warning"].rstrip(".")
    reason = f" ({warning[:1].lower()}{warning[1:]})" if warning else ""
    return f"is too easy to guess{reason}; {ADVICE}."
