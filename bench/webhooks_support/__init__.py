"""Bench-only modules for bench/webhooks.py (never imported by the site).

``settings`` is the production settings plus ``ROOT_URLCONF = "bench.webhooks_support.urls"``,
which adds a bare baseline view next to the real URLs; ``tasks`` holds the no-op task whose
drain rate is the baseline for the inbox's processing task.
"""
