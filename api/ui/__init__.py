"""The dashboard at ``/ui``: server-rendered pages for keys, runs, spend and alerts.

Why this stack: Jinja2 templates rendered by the api itself, htmx for the live parts (fragments
that poll) and uPlot for the one chart. It needs no separate front-end build, no Node at run
time and no second service; both libraries are small, dependency-free and vendored at pinned
versions with their licences (``static/vendor/``), so the pages work with no external network.
The pages call the same functions as the admin api, so the two cannot disagree.
"""
