"""Which API token a request carries, so the Hugging Face token only ever goes to Hugging Face.

httpx2 and huggingface_hub are imported only when needed: `m2 --help` must not pay for them.
"""

from __future__ import annotations

import os

_HF_DOMAINS = ("huggingface.co", "hf.co")


def is_huggingface_url(url: str) -> bool:
    """Whether `url` is an https URL on huggingface.co, hf.co, or a subdomain of either.

    The host is read the way httpx2 reads it when it connects, so userinfo (`https://huggingface.co@
    evil.com/`) and look-alikes (`huggingface.co.evil.com`, `evilhuggingface.co`) do not pass;
    nor does plain http, since the token would cross the network in the clear.
    """
    import httpx2

    try:
        parsed = httpx2.URL(url)
    except (httpx2.InvalidURL, TypeError):
        return False
    if parsed.scheme != "https":
        return False

    host = parsed.raw_host.decode("ascii", errors="replace").lower()
    return any(host == domain or host.endswith("." + domain) for domain in _HF_DOMAINS)


def resolve_token(base_url: str, api_key: str | None = None) -> str | None:
    """The token to send to `base_url`, or None to send none.

    In order: `api_key`; the `M2_API_KEY` environment variable; then, only when `base_url` is a
    Hugging Face URL (`is_huggingface_url`), huggingface_hub's token (`HF_TOKEN`, or the file that
    `hf auth login` writes under `HF_HOME`), then `HUGGINGFACE_API`. Any other URL, such as a
    self-hosted vLLM server, never receives the Hugging Face token. Empty values count as unset.
    """
    return find_token(base_url, api_key)[0]


def find_token(base_url: str, api_key: str | None = None) -> tuple[str | None, str]:
    """The token for `base_url` (as `resolve_token`) and where it came from, for error hints:
    "api_key", "M2_API_KEY", "hub" (HF_TOKEN or the `hf auth login` file), "HUGGINGFACE_API", or
    "" when there is none."""
    if token := _clean(api_key):
        return token, "api_key"
    if token := _clean(os.environ.get("M2_API_KEY")):
        return token, "M2_API_KEY"
    if not is_huggingface_url(base_url):
        return None, ""

    from huggingface_hub import get_token

    if token := _clean(get_token()):
        return token, "hub"
    if token := _clean(os.environ.get("HUGGINGFACE_API")):
        return token, "HUGGINGFACE_API"
    return None, ""


def _clean(token: str | None) -> str | None:
    # A token pasted with its newline would make an invalid header.
    if token is None:
        return None
    return token.strip() or None
