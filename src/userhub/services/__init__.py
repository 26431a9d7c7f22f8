"""The services: what userhub does with accounts, tokens and passwords, knowing no HTTP.

They raise the domain errors of ``services.errors``; the web layer decides what a client sees.
"""
