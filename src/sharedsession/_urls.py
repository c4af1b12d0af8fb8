"""Redis URLs fit to print: passwords hidden. Used by the CLI and the demo."""

from __future__ import annotations

from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

__all__ = ["redact_url", "scrub"]


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, fit to print.

    Userinfo without a colon is hidden too: redis-py reads it as a user
    name, but it is a common way of (mistakenly) writing a password.
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    redacted = url
    if "@" in parts.netloc:
        userinfo, _, host = parts.netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        hidden = f"{user}:***@{host}" if colon else f"***@{host}"
        redacted = redacted.replace(f"//{parts.netloc}", f"//{hidden}", 1)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    if any(name == "password" for name, _ in pairs):
        query = urlencode([(n, "***" if n == "password" else v) for n, v in pairs], safe="*")
        redacted = redacted.replace(f"?{parts.query}", f"?{query}", 1)
    return redacted


def scrub(text: str, url: str) -> str:
    """Remove the URL's secrets from an error message, should a library have quoted them."""
    try:
        parts = urlsplit(url)
        secrets_in_url = [parts.password, *(v for n, v in parse_qsl(parts.query) if n == "password")]
    except ValueError:
        return text
    for secret in filter(None, secrets_in_url):
        for form in {secret, unquote(secret)}:
            text = text.replace(form, "***")
    return text
