"""Sign-in throttling that slows guessing down and cannot be turned against the user.

Failed sign-ins count per (username, address) and per address, never per username alone;
every 429 says when to come back (`Retry-After`); failures show in /metrics and as an alert.
"""

import time
import uuid

import pytest
from prometheus_client import REGISTRY
from redis import Redis
from werkzeug.exceptions import TooManyRequests

from studio.observability import observatory

from .conftest import PASSWORD, make_api, token_from

ATTACKERS = [f"203.0.113.{number}" for number in range(1, 30)]
BOB_AT_HOME = "198.51.100.7"


def sign_in(client, username, password, address):
    """Post the sign-in form from `address` as a browser does; return the response."""
    page = client.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    data = {"username": username, "password": password, "csrf_token": token_from(page)}
    return client.post("/login", data=data, environ_base={"REMOTE_ADDR": address})


def retry_after(response) -> int:
    assert response.status_code == 429
    return int(response.headers["Retry-After"])


@pytest.fixture
def bob(app):
    return make_api(app, "bob")


def test_failures_for_bob_from_five_addresses_do_not_lock_bob_out(app, bob):
    """The issue's case: 5 wrong passwords for bob from 5 addresses, then bob from a sixth."""
    for address in ATTACKERS[:5]:
        assert sign_in(app.test_client(), "bob", "not the password", address).status_code == 401
    response = sign_in(app.test_client(), "bob", PASSWORD, BOB_AT_HOME)
    assert response.status_code == 302 and response.headers["Location"] == "/admin/"


def test_an_address_guessing_bob_is_stopped_while_bob_signs_in_from_his(app, bob):
    attacker = app.test_client()
    statuses = [
        sign_in(attacker, "bob", "not the password", ATTACKERS[0]).status_code for _ in range(7)
    ]
    assert statuses == [401] * 5 + [429] * 2
    # The right password does not help the guesser either: it is not even checked.
    refused = sign_in(attacker, "bob", PASSWORD, ATTACKERS[0])
    assert 1 <= retry_after(refused) <= 60
    assert "Please wait" in refused.get_data(as_text=True)
    assert sign_in(app.test_client(), "bob", PASSWORD, BOB_AT_HOME).status_code == 302


def test_an_address_trying_many_usernames_is_slowed_down(app, bob):
    hammering = app.test_client()
    statuses = [
        sign_in(hammering, f"user{number}", "not the password", ATTACKERS[0]).status_code
        for number in range(22)
    ]
    assert statuses == [401] * 20 + [429] * 2
    refused = sign_in(hammering, "someone-else", "not the password", ATTACKERS[0])
    assert 1 <= retry_after(refused) <= 60
    # Other addresses are not slowed by it, nor is bob.
    assert sign_in(app.test_client(), "user1", "x", ATTACKERS[1]).status_code == 401
    assert sign_in(app.test_client(), "bob", PASSWORD, BOB_AT_HOME).status_code == 302


def test_correct_sign_ins_are_not_counted(app, bob, monkeypatch):
    # An office behind one address, say, where everyone signs in at nine.
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_IP", "2/minute")
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_USERNAME_AND_IP", "2/minute")
    for _ in range(4):
        assert sign_in(app.test_client(), "bob", PASSWORD, BOB_AT_HOME).status_code == 302


def test_the_wait_grows_with_the_failures(app, bob, monkeypatch):
    # The defaults' tiers (a minute, an hour, a day), shrunk so the first one ends in a second.
    monkeypatch.setitem(app.config, "LOGIN_LIMIT_PER_USERNAME_AND_IP", "2/second;4/hour")
    client = app.test_client()
    failures = [sign_in(client, "bob", "wrong", ATTACKERS[0]) for _ in range(3)]
    assert [response.status_code for response in failures] == [401, 401, 429]
    assert 1 <= retry_after(failures[-1]) <= 2
    time.sleep(1.1)  # the first tier's window ends; the hour's still holds 2 failures
    failures = [sign_in(client, "bob", "wrong", ATTACKERS[0]) for _ in range(3)]
    assert [response.status_code for response in failures] == [401, 401, 429]
    assert 3500 <= retry_after(failures[-1]) <= 3600
    assert "Please wait 60 minutes" in failures[-1].get_data(as_text=True)


def test_every_429_says_when_to_come_back(extra_apps):
    app = extra_apps()

    def refuse():
        raise TooManyRequests()

    app.add_url_rule("/api/v1/slow-down", "api_slow_down", refuse)
    app.add_url_rule("/slow-down", "slow_down", refuse)
    client = app.test_client()
    api = client.get("/api/v1/slow-down")
    assert retry_after(api) == 60
    assert api.get_json()["error"]["code"] == "too_many_requests"
    page = client.get("/slow-down")
    assert retry_after(page) == 60 and "Please wait 60 seconds" in page.get_data(as_text=True)


def test_the_throttle_is_shared_by_instances_on_one_redis(committed_app, redis_url, extra_apps):
    """Failures on one instance count on another; a new instance finds them in Redis."""
    # Limiter keys outlive the test in Redis: names and an address of its own keep runs apart.
    run = uuid.uuid4().hex[:8]
    username, address = f"bob-{run}", f"2001:db8::{run[:4]}:{run[4:]}"
    make_api(committed_app, username)
    # A cache of its own too: the other test process's users have the same ids.
    settings = {"REDIS_URL": redis_url, "CACHE_KEY_PREFIX": f"throttle-{run}:"}
    instances = [extra_apps(**settings), extra_apps(**settings)]
    redis = Redis.from_url(redis_url)
    try:
        statuses = [
            sign_in(instances[number % 2].test_client(), username, "wrong", address).status_code
            for number in range(5)
        ]
        assert statuses == [401] * 5
        assert redis.keys(f"*{run}*")
        # A third instance starts with a limiter of its own: only Redis can tell it of the five.
        third = extra_apps(**settings).test_client()
        assert 1 <= retry_after(sign_in(third, username, "wrong", address)) <= 60
        assert (
            sign_in(instances[0].test_client(), username, PASSWORD, BOB_AT_HOME).status_code == 302
        )
    finally:
        for key in redis.keys(f"*{run}*") + redis.keys(f"*{address}/*"):
            redis.delete(key)


def failed_sign_ins(reason):
    return REGISTRY.get_sample_value("studio_sign_ins_failed_total", {"reason": reason}) or 0


def test_failed_sign_ins_are_counted_in_metrics(app, bob):
    before = {reason: failed_sign_ins(reason) for reason in ("credentials", "throttled")}
    client = app.test_client()
    for _ in range(7):
        sign_in(client, "bob", "wrong", ATTACKERS[0])
    sign_in(client, "bob", PASSWORD, BOB_AT_HOME)
    assert failed_sign_ins("credentials") - before["credentials"] == 5
    assert failed_sign_ins("throttled") - before["throttled"] == 2
    scraped = bob.get("/metrics").get_data(as_text=True)
    assert 'studio_sign_ins_failed_total{reason="credentials"}' in scraped


def test_a_burst_of_failed_sign_ins_raises_an_alert(extra_apps, caplog):
    app = extra_apps(ALERT_FAILED_SIGN_INS=4)
    sampler = observatory(app).sampler  # as its thread samples, every METRICS_SAMPLE_SECONDS
    with caplog.at_level("WARNING", logger="studio"):
        for address in ATTACKERS[:3]:
            sign_in(app.test_client(), "bob", "wrong", address)
        sampler.sample()  # a sample checks the alerts
        assert "failed_sign_ins" not in [alert.name for alert in observatory(app).alerts.current()]
        sign_in(app.test_client(), "bob", "wrong", ATTACKERS[3])
        sampler.sample()
    assert "failed_sign_ins" in [alert.name for alert in observatory(app).alerts.current()]
    logged = [
        r.getMessage() for r in caplog.records if "alert started: failed_sign_ins" in r.getMessage()
    ]
    assert logged == ["alert started: failed_sign_ins: 4 failed sign-ins (alert at 4)"]
