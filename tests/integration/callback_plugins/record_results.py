"""Test-only callback: appends every task result as one JSON line to $LIFEBOAT_TEST_RECORD."""
import json
import os

from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: record_results
type: aggregate
short_description: Record task results for lifeboat's integration tests
description: Appends each task result, as JSON, to the file named by LIFEBOAT_TEST_RECORD.
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "record_results"
    CALLBACK_NEEDS_ENABLED = True

    def _record(self, result, status):
        path = os.environ.get("LIFEBOAT_TEST_RECORD")
        if not path:
            return
        data = dict(result._result)
        data["_status"] = status
        with open(path, "a") as out:
            out.write(json.dumps({"task": result._task.get_name(), "host": result._host.get_name(),
                                  "result": data}, default=str) + "\n")

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")
