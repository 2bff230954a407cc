"""Bench-only modules for bench/soak.py (never imported by the site).

``locustfile`` is the soak's load, run by ``locust --headless`` in its own process (locust
patches the standard library with gevent on import, so it never shares a process with Django).
"""
