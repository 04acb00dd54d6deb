"""Signing in to studio over HTTP and sending its forms, as a browser would (urllib only)."""

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request

GIVE_UP_SECONDS = 600


class Browser:
    """Cookies and forms over urllib, as far as the benchmark needs them."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def get(self, path: str) -> tuple[int, str, str]:
        return self._open(urllib.request.Request(self.base + path))

    def post(self, path: str, body: bytes, content_type: str) -> tuple[int, str, str]:
        request = urllib.request.Request(
            self.base + path, data=body, headers={"Content-Type": content_type}, method="POST"
        )
        return self._open(request)

    def post_form(self, path: str, fields: dict[str, str]) -> tuple[int, str, str]:
        body = urllib.parse.urlencode(fields).encode()
        return self.post(path, body, "application/x-www-form-urlencoded")

    def _open(self, request: urllib.request.Request) -> tuple[int, str, str]:
        """Return the status, the final URL and the page, following redirects."""
        try:
            with self.opener.open(request, timeout=GIVE_UP_SECONDS) as response:
                return response.status, response.url, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.url, exc.read().decode()

    def sign_in(self, username: str, password: str) -> None:
        """Sign in through the login form, or stop the run saying why not."""
        _, _, login = self.get("/login")
        status, url, _ = self.post_form(
            "/login", {"csrf_token": csrf_token(login), "username": username, "password": password}
        )
        if status != 200 or "/login" in url:
            raise SystemExit(f"could not sign in as {username} ({status}, {url})")

    def cookie_header(self) -> str:
        """Return the session's cookies as a Cookie header (Secure ones too: the loopback)."""
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.jar)


def csrf_token(page: str) -> str:
    """Return the CSRF token of the page's first form."""
    return re.search(r'name="csrf_token"[^>]*?value="([^"]+)"', page).group(1)
