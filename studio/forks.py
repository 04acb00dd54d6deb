"""Per-process state that a forked child must set up afresh (gunicorn forks its workers).

A lock, a socket or a thread held in the parent is not the child's own: each object that
keeps one registers its reset here, and every child forked afterwards runs it first.
"""

import os
import weakref
from collections.abc import Callable

_RESETS: list[weakref.WeakMethod] = []


def reset_in_children(reset: Callable[[], None]) -> None:
    """Run this bound method in every child forked from now on, while its object lives."""
    _RESETS[:] = [method for method in _RESETS if method() is not None]
    _RESETS.append(weakref.WeakMethod(reset))


def _reset_all_in_child() -> None:
    for method in list(_RESETS):
        reset = method()
        if reset is not None:
            reset()


os.register_at_fork(after_in_child=_reset_all_in_child)
