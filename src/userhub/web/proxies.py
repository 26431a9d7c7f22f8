"""Behind a reverse proxy: believe its ``X-Forwarded-*`` headers, for as many hops as configured.

Behind nginx (``deploy/nginx.conf.template``) every request comes from nginx's address, so the
rate limits, which count per ``request.remote_addr``, would count all clients as one, and URLs
built by ``url_for(..., _external=True)`` would name the upstream port. With
``USERHUB_TRUSTED_PROXIES=N``, Werkzeug's ProxyFix takes the client address, scheme, host and
port from the values the last N proxies appended. With 0 (the default) the headers are ignored:
a client can send them itself, and believing them would let it pick its own rate-limit bucket.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix


def init_app(app: Flask) -> None:
    hops = app.config["USERHUB_TRUSTED_PROXIES"]
    if hops:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops, x_port=hops
        )
