"""Transport security: known hosts, HTTPS, HSTS, caching, Server-Timing and the CSP's images."""

import re

import pytest

from studio.config import ConfigError
from studio.security import shown_image

SHOP = "shop.example"
SERVER_TIMING = re.compile(r"^db;dur=[\d.]+, cache;dur=[\d.]+, total;dur=[\d.]+$")


@pytest.fixture
def shop(extra_apps):
    """An app that answers to shop.example only, redirecting plain HTTP to HTTPS."""
    return extra_apps(FORCE_HTTPS=True, ALLOWED_HOSTS=(SHOP,))


@pytest.mark.parametrize("path", ["/login", "/admin/", "/nowhere", "/api/v1/paints"])
def test_an_unknown_host_is_refused_and_never_redirected_to(shop, path):
    """The issue's case: Host: evil.example with FORCE_HTTPS gave Location: https://evil.example/."""
    client = shop.test_client()
    for scheme in ("http", "https"):
        response = client.get(path, base_url=f"{scheme}://evil.example")
        assert response.status_code == 400, (scheme, response.headers.get("Location"))
        assert "Location" not in response.headers
        assert "evil.example" not in response.get_data(as_text=True)


def test_the_https_redirect_goes_to_the_configured_host(shop):
    response = shop.test_client().get(
        "/login?next=/admin/",
        base_url=f"http://{SHOP}",
        # ProxyFix trusts no forwarded host: the router's Host header is the one that counts.
        headers={"X-Forwarded-Host": "evil.example"},
    )
    assert response.status_code == 308
    assert response.headers["Location"] == f"https://{SHOP}/login?next=/admin/"


@pytest.mark.parametrize(
    "host", ["evil.example", "shop.example.evil.example", "", "a b", "x/y", "shop.example.."]
)
def test_only_the_allowed_hosts_are_answered_even_without_https(extra_apps, host):
    client = extra_apps(ALLOWED_HOSTS=(SHOP, ".studio.example")).test_client()
    assert client.get("/login", base_url=f"http://{SHOP}").status_code == 200
    assert client.get("/login", base_url="http://eu.studio.example:8080").status_code == 200
    for same in ("SHOP.Example", "shop.example.", "shop.example.:8080"):
        assert client.get("/login", headers={"Host": same}).status_code == 200, same
    response = client.get("/login", headers={"Host": host})
    assert response.status_code == 400


def test_an_unknown_host_gets_the_apis_json_error(extra_apps):
    client = extra_apps(ALLOWED_HOSTS=(SHOP,)).test_client()
    response = client.get("/api/v1/paints", base_url="http://evil.example")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


@pytest.mark.parametrize("path", ["/health", "/health/ready"])
def test_the_platforms_health_checks_are_answered_under_any_host_over_http(shop, path):
    """Railway checks with Host: healthcheck.railway.app; Kubernetes with the pod's address."""
    client = shop.test_client()
    for host in ("healthcheck.railway.app", "10.0.3.7:8080"):
        response = client.get(path, base_url=f"http://{host}")
        assert response.status_code == 200, host
        assert "Strict-Transport-Security" not in response.headers


def test_force_https_without_allowed_hosts_refuses_to_start(extra_apps):
    with pytest.raises(ConfigError, match="FORCE_HTTPS needs ALLOWED_HOSTS"):
        extra_apps(FORCE_HTTPS=True)


def test_the_api_over_plain_http_is_refused_not_redirected(shop, api):
    """A script that follows a redirect would go on sending its token in clear unnoticed."""
    response = shop.test_client().get(
        "/api/v1/paints", base_url=f"http://{SHOP}", headers=api.headers
    )
    assert response.status_code == 403
    assert "Location" not in response.headers
    assert "HTTPS" in response.get_json()["error"]["message"]


def test_hsts_is_sent_over_https_only_and_can_be_turned_off(extra_apps):
    on = extra_apps(HSTS=True).test_client()
    secure = on.get("/login", base_url="https://localhost")
    assert secure.headers["Strict-Transport-Security"] == "max-age=31536000"
    assert "Strict-Transport-Security" not in on.get("/login").headers
    off = extra_apps(HSTS=False).test_client()
    assert (
        "Strict-Transport-Security" not in off.get("/login", base_url="https://localhost").headers
    )


def test_admin_pages_sign_in_and_api_answers_are_not_stored(admin, api, make_paint):
    paint = make_paint()
    private = [
        admin.get("/admin/"),
        admin.get(f"/admin/paints/{paint.id}"),
        admin.client.get("/login"),
        api.get(f"/api/v1/paints/{paint.id}"),
        api.get(f"/api/v1/paints/{paint.id}"),  # the cached read too
        api.get("/api/v1/paints"),
        api.get("/api/v1/paints/999999"),
    ]
    assert [response.headers.get("Cache-Control") for response in private] == ["no-store"] * 7
    assert private[3].get_json() == private[4].get_json()
    assert "no-store" not in admin.client.get("/health").headers.get("Cache-Control", "")


def test_every_answer_gets_each_security_header_once_and_a_views_own_value_stands(extra_apps):
    app = extra_apps(HSTS=True)

    @app.get("/framed")
    def framed():
        return "", 200, {"X-Frame-Options": "SAMEORIGIN"}

    client = app.test_client()
    for path in ("/framed", "/login", "/health"):
        headers = client.get(path, base_url="https://localhost").headers
        for name in (
            "Content-Security-Policy",
            "X-Content-Type-Options",
            "Referrer-Policy",
            "Cross-Origin-Opener-Policy",
            "X-Frame-Options",
            "Strict-Transport-Security",
        ):
            assert len(headers.getlist(name)) == 1, (path, name)
    framed_headers = client.get("/framed").headers
    assert framed_headers["X-Frame-Options"] == "SAMEORIGIN"
    assert framed_headers["Referrer-Policy"] == "same-origin"
    assert client.get("/login").headers["X-Frame-Options"] == "DENY"


def test_the_rate_limiter_runs_for_the_sign_in_pages_alone(app):
    # Only sign-in and the password change are limited; every other request skips its hooks.
    def from_limiter(hook):
        return getattr(getattr(hook, "func", hook), "__module__", "").startswith("flask_limiter")

    scopes = (app.before_request_funcs, app.after_request_funcs, app.teardown_request_funcs)
    where = {
        name for hooks in scopes for name, funcs in hooks.items() if any(map(from_limiter, funcs))
    }
    assert where == {"auth"}


def test_a_signed_out_visitor_gets_no_server_timing(client, admin, api):
    assert "Server-Timing" not in client.get("/login").headers
    assert "Server-Timing" not in client.get("/admin/").headers  # the redirect to sign in
    assert "Server-Timing" not in client.get("/api/v1/paints").headers  # 401
    assert "Server-Timing" not in client.get("/health").headers
    assert SERVER_TIMING.match(admin.get("/admin/").headers["Server-Timing"])
    assert SERVER_TIMING.match(api.get("/api/v1/paints").headers["Server-Timing"])


@pytest.mark.parametrize(("setting", "shown"), [("everyone", True), ("off", False)])
def test_server_timing_for_everyone_or_no_one_by_setting(extra_apps, setting, shown):
    response = extra_apps(SERVER_TIMING=setting).test_client().get("/login")
    assert ("Server-Timing" in response.headers) is shown


def test_the_csp_lets_images_come_from_this_site_data_and_the_image_hosts(client, extra_apps):
    policy = client.get("/login").headers["Content-Security-Policy"]
    assert "img-src 'self' data:;" in policy
    hosts = ("https://images.example.com", "https://*.cdn.example")
    policy = extra_apps(IMAGE_HOSTS=hosts).test_client().get("/login").headers
    assert "img-src 'self' data: https://images.example.com https://*.cdn.example;" in str(policy)


def test_a_photo_on_another_host_is_linked_not_shown(admin, make_paint):
    paint = make_paint(image_url="https://tracker.example/p.png?admin=1")
    page = admin.get(f"/admin/paints/{paint.id}").get_data(as_text=True)
    assert "<img" not in page.split('class="details"')[1].split("Adjust stock")[0]
    assert 'href="https://tracker.example/p.png?admin=1"' in page
    assert "IMAGE_HOSTS" in page
    paint = make_paint(image_url="http://localhost/static/p.png")  # this site: 'self'
    page = admin.get(f"/admin/paints/{paint.id}").get_data(as_text=True)
    assert '<img class="paint-image" src="http://localhost/static/p.png"' in page


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://images.example.com/p.png", True),
        ("https://images.example.com:443/p.png", True),
        ("http://images.example.com/p.png", False),
        ("https://images.example.com:8443/p.png", False),
        ("https://evilimages.example.com/p.png", False),
        ("https://a.cdn.example/p.png", True),
        ("https://cdn.example/p.png", False),
        ("https://x.a.cdn.example/p.png", True),
        ("http://legacy.example:8080/p.png", True),
        ("https://legacy.example:8080/p.png", True),
        ("https://legacy.example/p.png", False),
        ("https://localhost/p.png", False),
        ("http://localhost/p.png", True),
        ("https://images.example.com:99999/p.png", False),
    ],
)
def test_which_photos_the_csp_lets_through(extra_apps, url, shown):
    sources = ("https://images.example.com", "https://*.cdn.example", "http://legacy.example:8080")
    app = extra_apps(IMAGE_HOSTS=sources)
    with app.test_request_context(base_url="http://localhost"):
        assert shown_image(url) is shown
