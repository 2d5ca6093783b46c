# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""PostgreSQL in a container (issue 20): its client tools run inside it through the Docker API,
while the repository, manifests and locks stay on the Docker host."""
