# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL itself: connections, client tools and their streams, catalog queries, names, sequences, archive tables of contents, SQL scripts, schema fingerprints."""
