# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Incremental exports of changed rows and applying them onto a restored base (the delta module):
sets.py the delta set format, its tables and chain; export.py action=export; apply.py action=apply; run.py."""
