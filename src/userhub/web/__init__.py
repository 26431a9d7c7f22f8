"""The request pipeline: what every request passes through on its way to a view and back.

Problems and error handlers, JSON bodies, sessions, CSRF, proxies, limits, security headers,
languages and logs. Views (``pages``, ``api``) build on it; it builds on the services.
"""
