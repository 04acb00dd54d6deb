"""Security headers on every response, and HTTPS where the platform does not force it."""

from flask import Flask, Response, redirect, request

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        # Paint photos live on suppliers' sites.
        "img-src 'self' data: https: http:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


def register_security(app: Flask) -> None:
    """Send the security headers, and redirect to HTTPS when FORCE_HTTPS is set."""
    force_https = app.config.get("FORCE_HTTPS", False)

    @app.before_request
    def redirect_to_https():
        # The platform's health checks come from inside, over plain HTTP.
        if force_https and not request.is_secure and request.blueprint != "health":
            return redirect(request.url.replace("http://", "https://", 1), code=308)
        return None

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
        if force_https:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response
