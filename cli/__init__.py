"""The ``runcap`` command: keys, spend, runs and a live tail, over the admin api.

Why only the admin api: the command needs nothing but HTTP, so it imports no part of the
gateway (no Temporal, no database) and works the same against a local ``make run`` and a
deployed gateway.
"""
