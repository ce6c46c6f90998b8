"""The lending model before lines: per-run advances and period leases drawn by runs, frozen.

Why it is still here: ``AgentRun`` and ``KeyBudget`` workflows started before lines (and the
recorded histories in ``tests/workflows/histories``) replay through this code, which
``workflow.patched("lines")`` selects for them; new workflows never use it. Nothing here
changes. Delete it once no such workflow is open (a run closes after an hour idle, a period a
week after it ends).
"""
