"""The example agent's test runner: a stand-in for ``pytest`` in the agent's sandbox.

It fails the first patch and passes the second, so the demo walks the whole loop
(plan, edit, test, read the failure, edit again) deterministically.
"""

from __future__ import annotations

from temporalio import activity

from examples.agent import SuiteReport, SuiteRun


@activity.defn(name="run_tests")
async def run_tests(run: SuiteRun) -> SuiteReport:
    if run.iteration < 2:
        return SuiteReport(False, "FAILED tests/test_parser.py::test_empty_input - IndexError")
    return SuiteReport(True, "12 passed")
