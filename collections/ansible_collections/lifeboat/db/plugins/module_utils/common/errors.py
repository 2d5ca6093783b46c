# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error type of the collection.

Deep code raises LifeboatError with a message an operator can act on; each module's main()
turns it into fail_json(msg=...) in exactly one place.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type


class LifeboatError(Exception):
    """A failure with a one-line, operator-facing message (what failed, and what to do)."""

    def __init__(self, msg, **facts):
        super(LifeboatError, self).__init__(msg)
        self.msg = msg
        # Extra result keys worth returning with the failure (e.g. the safety backup id).
        self.facts = facts


def error_text(exc):
    """The text of an error caught where a task goes on (a retention that could not delete, a
    clean-up after a commit): a LifeboatError's message, an OSError's reason, else the error."""
    return getattr(exc, 'msg', None) or getattr(exc, 'strerror', None) or str(exc)
