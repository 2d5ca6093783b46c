# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A restore's request (what the task asked, checked), the changes it would make in order (check
mode's plan), and the phase it reports while it runs."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.lifeboat.db.plugins.module_utils.integrity.custom import normalize_checks
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.restore.finish import normalize_grants
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.restore.swap import previous_name
from ansible_collections.lifeboat.db.plugins.module_utils.restore.table_plan import display, table_keys

MODES = ('swap', 'new', 'replace', 'tables')


class RestoreRequest(object):
    def __init__(self, backup_db, backup, target_db, mode, jobs=1, no_owner=True, no_acl=True,
                 maintenance_db='postgres', analyze=True, safety_backup=True, glacier_restore=False,
                 grace_seconds=1.0, keep_previous=1, kind=None, tables=None, role=None, grants=None,
                 refresh_matviews=False, repair_sequences=True, checks=None, locale_fallback=False):
        if grace_seconds < 0:
            raise LifeboatError('grace_seconds must be 0 or more, got %s' % grace_seconds)
        if keep_previous < 0:
            raise LifeboatError('keep_previous must be 0 or more, got %d' % keep_previous)
        self.grace_seconds = grace_seconds
        self.kind = kind
        self.keep_previous = keep_previous
        if mode not in MODES:
            raise LifeboatError('mode must be one of %s, got %r' % (', '.join(MODES), mode))
        if jobs < 1:
            raise LifeboatError('jobs must be at least 1, got %d' % jobs)
        self.backup_db = backup_db
        self.backup = backup
        self.target_db = target_db
        self.mode = mode
        self.jobs = jobs
        self.no_owner = no_owner
        self.no_acl = no_acl
        self.maintenance_db = maintenance_db
        self.analyze = analyze
        self.safety_backup = safety_backup
        self.glacier_restore = glacier_restore
        # mode=tables: (schema, table) pairs (table_plan.py)
        self.tables = table_keys(mode, tables)
        self.role = role
        self.grants = normalize_grants(grants)
        self.refresh_matviews = refresh_matviews
        self.repair_sequences = repair_sequences
        self.checks = normalize_checks(checks)
        if mode == 'tables' and (self.grants or refresh_matviews or self.checks):
            raise LifeboatError('grants, refresh_matviews and checks apply to a restored database (modes swap, new, '
                                'replace), not to mode=tables; run them as separate tasks')
        # Create the database with this server's settings when the backup's locale is not here.
        self.locale_fallback = locale_fallback
        self.progress = None
        # Said by the task, which succeeded: what went wrong after the restore was committed.
        self.warnings = []


def phase(request, phase, **facts):
    # Progress.update never fails: a full disk ends the reports, not the restore.
    if request.progress is not None:
        request.progress.update(force=True, phase=phase, **facts)


def plan(request, backup, exists):
    """The changes a restore makes, in order (reported by check mode)."""
    plan = []
    if request.mode == 'tables':
        return ['restore table(s) %s of backup %s into database %r'
                % (', '.join(display(key) for key in request.tables), backup.backup_id, request.target_db)]
    if request.mode == 'swap':
        plan.append('restore backup %s into a staging database and check its row counts against the manifest'
                    % backup.backup_id)
        if exists:
            plan.append('swap it in for database %r (new connections refused, sessions ended after %s s), keeping '
                        'the previous one as %s<time> (keep_previous: %d)'
                        % (request.target_db, request.grace_seconds, previous_name(request.target_db, utc_now())[:-14],
                           request.keep_previous))
        else:
            plan.append('rename it to %r' % request.target_db)
        return plan
    if exists:
        if request.safety_backup:
            plan.append('take a safety backup (kind pre-restore) of database %r' % request.target_db)
            plan.append('drop database %r WITH (FORCE)' % request.target_db)
        else:
            plan.append('drop database %r WITH (FORCE), with no safety backup: if the restore fails, what it holds '
                        'is lost' % request.target_db)
    plan.append('create database %r and restore backup %s into it with pg_restore' % (request.target_db, backup.backup_id))
    if request.analyze:
        plan.append('analyze database %r' % request.target_db)
    return plan
