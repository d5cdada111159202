"""The learners' page: one self-contained file (page.html, package data) with its style and script
inline, served with a Content-Security-Policy that allows exactly that style and that script
(by their SHA-256, computed when the page is first served), requests to this server only, and
nothing else: no CDN, no other origin, no plug-in, no frame, no form posting elsewhere. The page
writes every text it gets from the server with textContent, never as HTML.
"""

import base64
import functools
import hashlib
import re
from importlib import resources

from starlette.responses import HTMLResponse


@functools.lru_cache(maxsize=1)
def page():
    """(the page's HTML, its Content-Security-Policy)."""
    html = resources.files("microgpt.serve").joinpath("page.html").read_text(encoding="utf-8")

    def hashes(tag):
        blocks = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.S)
        assert blocks, f"page.html has no <{tag}>"
        return " ".join(f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in blocks)

    csp = (f"default-src 'none'; script-src {hashes('script')}; style-src {hashes('style')}; connect-src 'self'; "
           f"img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
    return html, csp


def page_response():
    html, csp = page()
    return HTMLResponse(html, headers={"content-security-policy": csp, "x-content-type-options": "nosniff",
                                       "referrer-policy": "no-referrer", "cache-control": "no-cache"})
