"""The lists of allowed paint types and colour families, and how admins keep them.

A paint stores the value's canonical spelling itself, so listing, search, CSV and the
figures read it as before. The rule "only values in the list, in their list spelling"
is kept here and applied by validate_paint, which every front end goes through; renaming
or merging a value rewrites its paints in the same transaction. The lists are cached
like a paint (retired by every change), and held for the rest of a request once read,
so checking a 200,000-row import asks for them once.
"""

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from flask import g
from sqlalchemy import delete, exists, func, select, update
from sqlalchemy.exc import IntegrityError

from ..extensions import db
from ..models import VOCABULARY_KINDS, Paint, VocabularyTerm, utcnow
from . import cached_reads, history, transactions
from .errors import Conflict, NotFound, ValidationError
from .history import Actor
from .planner import BULK_ROWS, refresh_statistics

CACHE_KEY = "vocabulary"
MAX_NAME_LENGTH = 50
SHOWN_IN_REFUSAL = 6
# kind: (one, many), as the admin pages and messages call them
KIND_NAMES = {
    "color_type": ("type", "types"),
    "color_family": ("colour family", "colour families"),
}
CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # as validation.CONTROL_CHARS


def match_key(value: str) -> str:
    """Return what makes two spellings the same value: case and spaces do not count."""
    return " ".join(value.split()).casefold()


@dataclass(frozen=True)
class Vocabulary:
    """The allowed values of each kind, in their canonical spellings, ordered for display."""

    names: dict[str, tuple[str, ...]]
    # kind: {match key: canonical spelling}, so checking a value is one dictionary lookup
    spellings: dict[str, dict[str, str]]

    @classmethod
    def of(cls, names: dict[str, tuple[str, ...]]) -> "Vocabulary":
        spellings = {kind: {match_key(name): name for name in names[kind]} for kind in names}
        return cls(names, spellings)

    def canonical(self, kind: str, value: str) -> str | None:
        """Return the list's spelling of `value`, or None if the list does not have it."""
        return self.spellings[kind].get(match_key(value))

    def refusal(self, kind: str) -> str:
        """Return the message for a value not in the list (after the field's name)."""
        one, many = KIND_NAMES[kind]
        names = self.names[kind]
        if not names:
            return (
                f"must be empty: the list of {many} is empty "
                f"(an admin adds {many} under Types & families)."
            )
        shown = ", ".join(names[:SHOWN_IN_REFUSAL])
        more = f", … {len(names)} in all" if len(names) > SHOWN_IN_REFUSAL else ""
        return (
            f"is not in the list of {many} ({shown}{more}); "
            f"an admin adds a new {one} under Types & families."
        )


def current() -> Vocabulary:
    """Return the allowed values (cached until they change; read once per request)."""
    vocabulary = g.get("vocabulary")
    if vocabulary is None:
        if g.get("vocabulary_changed"):
            # Changed by this request: the cached copy is retired only when it commits.
            vocabulary = _load()
        else:
            vocabulary = cached_reads.remember(CACHE_KEY, "PAINT_CACHE_TTL", _load)
        g.vocabulary = vocabulary
    return vocabulary


def _load() -> Vocabulary:
    rows = db.session.execute(
        select(VocabularyTerm.kind, VocabularyTerm.name).order_by(VocabularyTerm.match_key)
    )
    names: dict[str, list[str]] = {kind: [] for kind in VOCABULARY_KINDS}
    for kind, name in rows:
        names[kind].append(name)
    return Vocabulary.of({kind: tuple(values) for kind, values in names.items()})


@dataclass(frozen=True)
class TermUsage:
    """A value of a list and how many paints have it."""

    id: int
    kind: str
    name: str
    paints: int


def list_terms(kinds: Iterable[str] = VOCABULARY_KINDS) -> dict[str, list[TermUsage]]:
    """Return each kind's values with the number of paints using each (for the admin page)."""
    listed: dict[str, list[TermUsage]] = {}
    for kind in kinds:
        column = getattr(Paint, kind)
        used = dict(
            db.session.execute(
                select(column, func.count()).where(column.is_not(None)).group_by(column)
            ).all()
        )
        terms = db.session.scalars(
            select(VocabularyTerm)
            .where(VocabularyTerm.kind == kind)
            .order_by(VocabularyTerm.match_key)
        )
        listed[kind] = [
            TermUsage(term.id, kind, term.name, used.get(term.name, 0)) for term in terms
        ]
    return listed


def get_term(term_id: int) -> TermUsage:
    """Return one value with its number of paints, or raise NotFound."""
    term = _term(term_id)
    return TermUsage(term.id, term.kind, term.name, _paints_using(term))


def add_term(kind: str, name: str) -> TermUsage:
    """Add a value to a list; refuse one the list has in any spelling."""
    if kind not in VOCABULARY_KINDS:
        raise NotFound(f"There is no list called {kind}.")
    name = clean_name(name)
    _refuse_duplicate(kind, name)
    term = VocabularyTerm(kind=kind, name=name, match_key=match_key(name))
    db.session.add(term)
    with _duplicate_guard(kind, name):
        db.session.flush()
        added = TermUsage(term.id, kind, name, 0)
        transactions.commit(_retirement([]))
    return added


def rename_term(term_id: int, new_name: str, actor: Actor | None = None) -> tuple[str, int]:
    """Rename a value and every paint that has it, in one transaction.

    Returns the new name and how many paints changed. A change of case or spacing only
    ("blue" to "Blue") is a rename too. The history gets one entry for the shop, not one
    per paint: a rename of a value 100,000 paints have is one change an admin made.
    """
    term = _term(term_id)
    name = clean_name(new_name)
    if match_key(name) != term.match_key:
        _refuse_duplicate(term.kind, name, merge_from=term.name)
    if name == term.name:
        return name, 0
    old_name = term.name
    term.name, term.match_key = name, match_key(name)
    with _duplicate_guard(term.kind, name):
        changed = _rewrite_paints(term.kind, old_name, name)
        _record("rename", actor, term.kind, old_name, name, len(changed))
        transactions.commit(_retirement(changed))
    return name, len(changed)


def merge_terms(source_id: int, target_id: int, actor: Actor | None = None) -> tuple[str, int]:
    """Give the paints of one value another value of the same list, and drop the first.

    Returns the name kept and how many paints changed (one history entry, as a rename).
    """
    source = _term(source_id)
    target = db.session.get(VocabularyTerm, target_id)
    one, _ = KIND_NAMES[source.kind]
    if target is None or target.kind != source.kind:
        raise ValidationError({"target": f"must be another {one} from the list."})
    if target.id == source.id:
        raise ValidationError({"target": f"must be another {one}, not {source.name} itself."})
    kept = target.name
    changed = _rewrite_paints(source.kind, source.name, kept)
    _record("merge", actor, source.kind, source.name, kept, len(changed))
    db.session.delete(source)
    transactions.commit(_retirement(changed))
    return kept, len(changed)


def delete_term(term_id: int) -> str:
    """Remove a value no paint has; return its name. A value in use is refused.

    The check and the removal are one conditional DELETE, so a paint given the value
    after a separate count could not be left with a value the list lacks.
    """
    term = _term(term_id)
    name, column = term.name, getattr(Paint, term.kind)
    statement = (
        delete(VocabularyTerm)
        .where(VocabularyTerm.id == term_id, ~exists().where(column == VocabularyTerm.name))
        .execution_options(synchronize_session=False)
    )
    if db.session.execute(statement).rowcount == 0:
        db.session.rollback()
        one, _ = KIND_NAMES[term.kind]
        used = _paints_using(term)
        paints = "1 paint has" if used == 1 else f"{used} paints have"
        raise Conflict(
            f"{name} cannot be deleted: {paints} it. Merge it into another {one} "
            "instead, or change those paints first."
        )
    transactions.commit(_retirement([]))
    return name


def ensure_terms(kind: str, names: Iterable[str]) -> dict[str, str]:
    """Add the values a list lacks (in any spelling); return {name: its list spelling}.

    For demo data: the names given are spelt as the list spells them, old or new.
    """
    spellings = dict(current().spellings[kind])
    wanted = {name: match_key(clean_name(name)) for name in names}
    added = {key: " ".join(name.split()) for name, key in wanted.items() if key not in spellings}
    if added:
        db.session.add_all(
            VocabularyTerm(kind=kind, name=name, match_key=key) for key, name in added.items()
        )
        transactions.commit(_retirement([]))
    spellings.update(added)
    return {name: spellings[key] for name, key in wanted.items()}


def clean_name(value: object) -> str:
    """Return a value's name with its spaces tidied, or raise ValidationError."""
    if not isinstance(value, str):
        raise ValidationError({"name": "must be text."})
    name = " ".join(value.split())
    if not name:
        raise ValidationError({"name": "is required."})
    if CONTROL_CHARS.search(name):
        raise ValidationError({"name": "must not contain control characters."})
    if len(name) > MAX_NAME_LENGTH:
        raise ValidationError({"name": f"must be at most {MAX_NAME_LENGTH} characters."})
    return name


def _term(term_id: int) -> VocabularyTerm:
    term = db.session.get(VocabularyTerm, term_id) if 0 < term_id < 2**31 else None
    if term is None:
        raise NotFound(f"Value {term_id} is in neither list.")
    return term


def _paints_using(term: VocabularyTerm) -> int:
    column = getattr(Paint, term.kind)
    return db.session.scalar(select(func.count()).where(column == term.name)) or 0


def _refuse_duplicate(kind: str, name: str, merge_from: str | None = None) -> None:
    existing = db.session.scalar(
        select(VocabularyTerm.name).where(
            VocabularyTerm.kind == kind, VocabularyTerm.match_key == match_key(name)
        )
    )
    if existing is not None:
        raise ValidationError({"name": _duplicate_message(existing, merge_from)})


def _duplicate_message(existing: str, merge_from: str | None) -> str:
    message = f"is already in the list as {existing}"
    if merge_from is not None:
        return f"{message}; merge {merge_from} into {existing} instead."
    return f"{message}."


@contextmanager
def _duplicate_guard(kind: str, name: str) -> Iterator[None]:
    """Turn a duplicate another admin added meanwhile into the same refusal."""
    try:
        yield
    except IntegrityError:
        db.session.rollback()
        raise ValidationError({"name": _duplicate_message(name, None)}) from None


def _rewrite_paints(kind: str, old_name: str, new_name: str) -> list[int]:
    """Give every paint with `old_name` the value `new_name`; return their ids."""
    column = getattr(Paint, kind)
    statement = (
        update(Paint)
        .where(column == old_name)
        .values({column: new_name, Paint.version: Paint.version + 1, Paint.updated_at: utcnow()})
        .returning(Paint.id)
        .execution_options(synchronize_session=False)
    )
    changed = list(db.session.scalars(statement))
    if len(changed) >= BULK_ROWS:
        # Rewritten rows are new row versions: the planner's counts (the listing's
        # "about N") would be wrong until autovacuum analyzes the table.
        refresh_statistics()
    return changed


def _record(kind: str, actor: Actor | None, field: str, old: str, new: str, paints: int) -> None:
    note = "1 paint changed" if paints == 1 else f"{paints:,} paints changed"
    history.record(kind, actor, None, {field: [old, new]}, note)


def _retirement(paint_ids: list[int]) -> cached_reads.Retirement:
    # The list itself (the filters' choices, and how a filter's value is spelt), the paints
    # rewritten, and, if there are any, every cached read: they may be in any listing.
    g.pop("vocabulary", None)
    g.vocabulary_changed = True
    keys = (CACHE_KEY, *(cached_reads.paint_key(paint_id) for paint_id in paint_ids))
    return cached_reads.Retirement(keys, cached_reads.ALL_READS if paint_ids else frozenset())
