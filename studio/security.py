"""Security headers, known hosts only, HTTPS where the platform does not force it, no caching."""

import re
from collections.abc import Callable
from functools import lru_cache
from urllib.parse import urlsplit

from flask import Flask, Response, abort, current_app, redirect, request
from werkzeug.sansio.utils import host_is_trusted

from .config import ConfigError

HEADERS = {
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
NO_STORE = [("Cache-Control", "no-store")]
HSTS_SECONDS = 365 * 24 * 3600  # ASVS 3.4.1: at least a year
# Pages and answers for a signed-in admin or a token, which no browser or proxy may keep.
PRIVATE_BLUEPRINTS = frozenset({"admin", "auth", "api", "metrics"})
# The platform's health checks come from inside, over plain HTTP and under a Host of their
# own (Railway's is healthcheck.railway.app, Kubernetes' the pod's address); they build no URL.
ANY_HOST_BLUEPRINTS = frozenset({"health"})
DEFAULT_PORTS = {"http": 80, "https": 443}


def content_security_policy(image_sources: tuple[str, ...]) -> str:
    """Return the policy: everything from this site only, photos also from `image_sources`."""
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            " ".join(["img-src 'self' data:", *image_sources]),
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def register_security(app: Flask) -> None:
    """Refuse unknown hosts, redirect to HTTPS if asked, and send the security headers."""
    allowed_hosts, force_https = app.config["ALLOWED_HOSTS"], app.config["FORCE_HTTPS"]
    if force_https and not allowed_hosts:
        raise ConfigError(
            "FORCE_HTTPS needs ALLOWED_HOSTS: the redirect is built from the request's Host, "
            "which must be one of the site's names (e.g. ALLOWED_HOSTS=shop.example.com)."
        )

    if allowed_hosts or force_https:
        app.before_request(known_host_over_https(allowed_hosts, force_https))
    register_headers(app)
    app.add_template_test(shown_image)


FULLY_QUALIFIED = re.compile(r"\.(?=(:\d+)?$)")


def known_host_over_https(allowed_hosts: tuple[str, ...], force_https: bool) -> Callable:
    """Return the hook refusing unknown hosts (400) and redirecting plain HTTP to HTTPS."""

    # The verdict per Host value, kept: host_is_trusted IDNA-encodes every entry each time.
    @lru_cache(maxsize=64)
    def trusted(host: str) -> bool:
        # Host names are case-insensitive, and "shop.example." is the same name fully qualified.
        return host_is_trusted(FULLY_QUALIFIED.sub("", host.lower()), allowed_hosts)

    def refuse_or_redirect():
        if request.blueprint in ANY_HOST_BLUEPRINTS:
            return None
        # request.host is "" when the header is malformed, which no list trusts.
        if allowed_hosts and not trusted(request.host):
            abort(400, "This site does not answer to that host name.")
        if force_https and not request.is_secure:
            if request.blueprint == "api":
                # A script that followed a redirect would have sent its token in clear already
                # and go on doing so unnoticed (ASVS 4.1.2): it is told instead.
                abort(403, "The API answers over HTTPS only; nothing was done.")
            return redirect(request.url.replace("http://", "https://", 1), code=308)
        return None

    return refuse_or_redirect


def register_headers(app: Flask) -> None:
    """Send the security headers; HSTS over HTTPS; no-store on private pages and answers."""
    common = [("Content-Security-Policy", content_security_policy(app.config["IMAGE_HOSTS"]))]
    common += HEADERS.items()
    hsts = [("Strict-Transport-Security", f"max-age={HSTS_SECONDS}")] if app.config["HSTS"] else []
    # The four combinations, made once: (private, secure) -> the headers to add.
    prepared = {
        (private, secure): common + (hsts if secure else []) + (NO_STORE if private else [])
        for private in (False, True)
        for secure in (False, True)
    }
    names = frozenset(name.lower() for name, _ in common + hsts)

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        # Browsers ignore HSTS over plain HTTP, and RFC 6797 forbids sending it there.
        wanted = prepared[request.blueprint in PRIVATE_BLUEPRINTS, request.is_secure]
        headers = response.headers
        if names.isdisjoint(name.lower() for name in headers.keys()):
            headers.extend(wanted)  # the usual case: one pass, no name compared
            return response
        # A view set one of them itself: its value stands. A view's own Cache-Control
        # directives, were there any, would join no-store, which overrides them all.
        for name, value in wanted:
            if name == "Cache-Control":
                headers.add(name, value)
            else:
                headers.setdefault(name, value)
        return response


def shown_image(url: str | None) -> bool:
    """Whether the CSP lets the admin's browser load this photo (this site or IMAGE_HOSTS)."""
    if not url:
        return False
    parts = urlsplit(url)
    if parts.netloc == request.host and parts.scheme == request.scheme:
        return True
    return any(
        source_matches(source, parts.scheme, parts.hostname or "", port(parts))
        for source in current_app.config["IMAGE_HOSTS"]
    )


def port(parts) -> int | None:
    try:
        return parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:  # a port out of range: no source matches it
        return None


def source_matches(source: str, scheme: str, hostname: str, url_port: int | None) -> bool:
    """Match a URL against a CSP host source such as https://*.example.com:8443 (CSP 3)."""
    source_scheme, _, host = source.partition("://")
    host, _, source_port = host.partition(":")
    # An http: source also allows https:, never the other way round.
    if scheme != source_scheme and (source_scheme, scheme) != ("http", "https"):
        return False
    if url_port != (int(source_port) if source_port else DEFAULT_PORTS.get(scheme)):
        return False
    if host.startswith("*."):
        return hostname.endswith(host[1:])
    return hostname == host
