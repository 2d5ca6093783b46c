# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every package shares: errors, the module runner and its context, the clock, progress files,
evidence files on the controller (the action plugin lifeboat.db.evidence)."""
