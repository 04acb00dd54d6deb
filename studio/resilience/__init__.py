"""Surviving database faults: which are passing, retries, a circuit breaker, a deadline."""

from flask import Flask, current_app

from .breaker import CircuitBreaker

BREAKER_KEY = "studio.database_breaker"


def database_breaker(app: Flask | None = None) -> CircuitBreaker | None:
    """Return the app's database circuit breaker (None on SQLite, which has no server)."""
    return (app or current_app).extensions.get(BREAKER_KEY)
