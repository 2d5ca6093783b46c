# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):
    # The offsite copy's options that lifeboat.db.dump and lifeboat.db.files word alike; each module
    # documents its own offsite_url and offsite_keep_days (what is copied, which retention applies).
    DOCUMENTATION = r'''
options:
  offsite:
    description:
      - C(required) - a failed offsite copy fails the task (the local backup is kept and reported).
      - C(optional) - a failed offsite copy is a warning.
    type: str
    default: required
    choices: [required, optional]
  offsite_keep_last:
    description: Retention of the S3 copies (same rules as O(keep_last)). Default is O(keep_last).
    type: int
'''
