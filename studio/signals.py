"""What the product announces for whoever measures it (blinker signals, as Flask's own).

The product sends; the observability package listens and counts. Nothing here knows
who listens, so the product never imports the code that measures it.
"""

from blinker import Namespace

_signals = Namespace()

# A database operation failed for a passing reason and is tried again: sender is the
# wrapped function's name; `cause` is the failure in one line.
database_retry = _signals.signal("database-retry")
# A circuit breaker changed state: sender is the breaker, `state` the new one, `reopened`
# True when a failed probe opened it again during the same outage.
breaker_changed = _signals.signal("breaker-changed")
# A request was answered 503 because the database was unavailable: `cause` as above.
database_unavailable = _signals.signal("database-unavailable")
# A request was recognised as a signed-in admin's: sender is how ("session" or "token").
admin_identified = _signals.signal("admin-identified")
# The cache could not be told what a write changed (healed by a new cache epoch): `keys`.
cache_invalidation_missed = _signals.signal("cache-invalidation-missed")
# An idempotent request was answered from its first answer.
idempotent_replay = _signals.signal("idempotent-replay")
# A sign-in was refused: `throttled` False for a wrong username or password (401), True
# when the limiter refused it before the password was checked (429).
sign_in_failed = _signals.signal("sign-in-failed")
