# -*- coding: utf-8 -*-
"""Shared setup of the lifeboat.db unit tests: pure Python and files, no PostgreSQL server."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
COLLECTIONS = REPO_ROOT / 'collections'
COLLECTION_DIR = COLLECTIONS / 'ansible_collections' / 'lifeboat' / 'db'
MODULES_DIR = COLLECTION_DIR / 'plugins' / 'modules'

if str(COLLECTIONS) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS))


def module_names():
    """Every module of the collection, so a new module is covered without touching the tests."""
    return sorted(p.stem for p in MODULES_DIR.glob('*.py') if p.stem != '__init__')


def subprocess_run_command(argv, environ_update=None):
    """Stand-in for AnsibleModule.run_command: really runs argv, returns (rc, stdout, stderr)."""
    env = dict(os.environ)
    env.update(environ_update or {})
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def run_command():
    return subprocess_run_command
