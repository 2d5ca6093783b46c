# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where backup sets live: the local repository, set manifests, verification, S3; and the backup_info module that lists and verifies them."""
