# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A directory beside the database (the files module, e.g. seed 003's uploads): archive, verify and restore it
(archive), copy each set to S3 (offsite) and restore it from there on any host (restore_s3)."""
