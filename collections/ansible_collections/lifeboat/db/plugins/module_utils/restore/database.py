# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Restoring a backup set into a whole database (modes new, replace and swap; flow.py runs the
restore up to here and calls restore_database).

`swap` restores and checks a staging database while the live one keeps serving, then swaps it in.
`replace` first takes a safety backup of the current database (kind `pre-restore`, as seed 003
does by hand), and if the restore then fails it puts that safety backup back, so a failed replace
loses nothing.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gzip
import os
import re
import time

from ansible_collections.lifeboat.db.plugins.module_utils.backup.pg_dump import BackupRequest, take_backup
from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import (
    PassFile, dbname_argument, first_line, psycopg, sql)
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.custom import SAMPLE_ROWS, custom_check
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import ERROR, FAILED
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.runner import Snapshot, run_checks
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.catalog import exact_row_counts
from ansible_collections.lifeboat.db.plugins.module_utils.integrity.results import compare_row_counts
from ansible_collections.lifeboat.db.plugins.module_utils.restore.finish import (
    apply_grants, refresh_matviews, repair_sequences)
from ansible_collections.lifeboat.db.plugins.module_utils.pg.sequences import edge_name
from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.pg.stream import run_following_stderr, stream_from_file
from ansible_collections.lifeboat.db.plugins.module_utils.restore.swap import (
    drop_previous, mark, previous_name, probe_name, remove_stale_staging, staging_name, swap_in)
from ansible_collections.lifeboat.db.plugins.module_utils.common.runner import failure_line
from ansible_collections.lifeboat.db.plugins.module_utils.storage.verification import dump_major
from ansible_collections.lifeboat.db.plugins.module_utils.restore.request import RestoreRequest, phase
from ansible_collections.lifeboat.db.plugins.module_utils.restore import container

# CREATE DATABASE's SQLSTATEs for a locale this server has not got (wrong_object_type) or an
# encoding and locale that disagree here (invalid_parameter_value).
LOCALE_UNAVAILABLE = ('42809', '22023', '0A000')
# pg_restore --verbose's line as it starts loading a table's rows.
RESTORE_TABLE_LINE = re.compile(r'processing data for table "([^"]+)"')


def restore_database(ctx, conn, request, backup, pg_restore, archive, exists, facts, actions, timings):
    """Modes swap, new and replace: the database is created as the backup's was (or with this
    server's settings, locale_fallback), owned as the current one is, then restored by the mode's path."""
    owner = _owner(conn, request.target_db) if exists else request.role
    settings = _creatable_settings(conn, request, backup, owner, actions)
    path = _swap_restore if request.mode == 'swap' else _in_place_restore
    path(ctx, conn, request, backup, pg_restore, archive, exists, owner, settings, facts, actions, timings)


def _in_place_restore(ctx, conn, request, backup, pg_restore, archive, exists, owner, settings, facts, actions,
                      timings):
    """`new` and `replace`: restore into the target database itself."""
    manifest = backup.manifest
    safety = None
    if exists and request.safety_backup:
        safety = take_backup(ctx, BackupRequest(request.target_db, kind='pre-restore', local=True))
        facts['safety_backup_id'] = safety['backup_id']
        timings['safety_backup_seconds'] = safety['duration_seconds']
        actions.append('Took safety backup %s of database %r' % (safety['backup_id'], request.target_db))
    step = time.monotonic()
    # What this run did so far: a failure undoes exactly that and nothing else.
    done = dict(dropped=False, created=False)
    try:
        if exists:
            _drop(conn, request.target_db)
            done['dropped'] = True
        _create(conn, request.target_db, settings, owner)
        done['created'] = True
        phase(request, 'restoring')
        _pg_restore(ctx, pg_restore, archive, request, manifest)
        _finish(ctx, request.target_db, request, facts, actions)
        _run_checks(ctx, request.target_db, request, facts, actions)
    except (LifeboatError, psycopg.Error, IOError, OSError) as exc:
        raise _after_failure(ctx, conn, request, owner, safety, failure_line(exc), done)
    actions.append('%s database %r' % ('Dropped and recreated' if exists else 'Created', request.target_db))
    timings['restore_seconds'] = round(time.monotonic() - step, 3)
    actions.append('Restored backup %s into database %r with %s %s' % (backup.backup_id, request.target_db,
                                                                      pg_restore.name, pg_restore.version))
    if request.analyze:
        # The restore is committed: a failed ANALYZE is a warning, not a failed restore.
        step = time.monotonic()
        phase(request, 'analyzing')
        try:
            _analyze(ctx, request.target_db)
        except (LifeboatError, psycopg.Error) as exc:
            request.warnings.append('database %r is restored, but ANALYZE failed (%s); run it by hand'
                                    % (request.target_db, failure_line(exc)))
            return
        timings['analyze_seconds'] = round(time.monotonic() - step, 3)
        actions.append('Analyzed database %r' % request.target_db)


def _swap_restore(ctx, conn, request, backup, pg_restore, archive, exists, owner, settings, facts, actions,
                  timings):
    """`swap`: restore and check under a staging name while the live database keeps serving,
    then swap it in (swap.swap_in). Anything failing before the swap drops staging only."""
    stale = remove_stale_staging(conn, request.target_db)
    actions.extend('Dropped staging database %r left by an interrupted restore' % name for name in stale)
    staging = staging_name(request.target_db)
    step = time.monotonic()
    created = False
    try:
        _create(conn, staging, settings, owner)
        created = True
        _restore_staging(ctx, conn, request, backup, pg_restore, archive, staging, facts, actions, timings, step)
        phase(request, 'swapping')
        facts['swap'] = _put_in_place(conn, request, staging, exists)
    except (LifeboatError, psycopg.Error, IOError, OSError) as exc:
        raise _staging_failed(conn, request, staging, created, exc)
    if exists:
        _after_swap(conn, request, facts, actions)
    else:
        actions.append('Renamed staging database %r to %r' % (staging, request.target_db))


def _restore_staging(ctx, conn, request, backup, pg_restore, archive, staging, facts, actions, timings, step):
    """Into the created staging database: restore, compare row counts, finish, checks, analyze."""
    manifest = backup.manifest
    staged = RestoreRequest(request.backup_db, request.backup, staging, 'new', jobs=request.jobs,
                            no_owner=request.no_owner, no_acl=request.no_acl, role=request.role)
    staged.progress = request.progress
    staged.warnings = request.warnings
    # The mark is what lets a later run drop it as this target's staging (swap.remove_stale_staging).
    mark(conn, staging, 'staging', request.target_db)
    phase(request, 'restoring', staging_db=staging)
    _pg_restore(ctx, pg_restore, archive, staged, manifest)
    timings['restore_seconds'] = round(time.monotonic() - step, 3)
    actions.append('Restored backup %s into staging database %r with %s %s'
                   % (backup.backup_id, staging, pg_restore.name, pg_restore.version))
    phase(request, 'checking')
    check = _check_counts(ctx, staging, manifest)
    facts['row_count_check'] = check
    if check['status'] == 'failed':
        raise LifeboatError('the restored copy does not match backup %s: %s' % (backup.backup_id, check['summary']))
    actions.append('Checked staging database %r: %s' % (staging, check['summary']))
    _finish(ctx, staging, request, facts, actions)
    _run_checks(ctx, staging, request, facts, actions)
    if request.analyze:
        step = time.monotonic()
        phase(request, 'analyzing')
        _analyze(ctx, staging)
        timings['analyze_seconds'] = round(time.monotonic() - step, 3)
        actions.append('Analyzed staging database %r' % staging)


def _put_in_place(conn, request, staging, exists):
    """Staging becomes the target: swapped in for the live database, or renamed when there is none."""
    if exists:
        previous = previous_name(request.target_db, utc_now())
        return swap_in(conn, request.target_db, staging, previous, request.grace_seconds)
    with conn.transaction():
        conn.execute(sql.SQL('ALTER DATABASE {} RENAME TO {}').format(sql.Identifier(staging),
                                                                     sql.Identifier(request.target_db)))
        conn.execute(sql.SQL('COMMENT ON DATABASE {} IS NULL').format(sql.Identifier(request.target_db)))
    return dict(window_seconds=0.0, previous_db=None, sessions_terminated=0, grace_seconds=request.grace_seconds)


def _staging_failed(conn, request, staging, created, exc):
    """The error of a swap that failed before the swap: the target untouched, staging dropped."""
    if not created:
        return LifeboatError('%s; database %r was not touched' % (failure_line(exc), request.target_db))
    try:
        _drop(conn, staging)
    except psycopg.Error as second:
        return LifeboatError('%s; database %r was not touched, but dropping staging database %r failed too (%s): '
                             'drop it by hand' % (failure_line(exc), request.target_db, staging, first_line(second)))
    return LifeboatError('%s; database %r was not touched and staging database %r was dropped'
                         % (failure_line(exc), request.target_db, staging))


def _after_swap(conn, request, facts, actions):
    """The swap is committed: report it, and drop previous copies beyond keep_previous (a warning if not)."""
    actions.append('Swapped database %r in (unavailable for %.3f s, %d session(s) ended); the previous one is '
                   'kept as %r' % (request.target_db, facts['swap']['window_seconds'],
                                   facts['swap']['sessions_terminated'], facts['swap']['previous_db']))
    try:
        dropped = drop_previous(conn, request.target_db, request.keep_previous)
    except psycopg.Error as exc:
        request.warnings.append('database %r is restored, but dropping its previous databases beyond '
                                'keep_previous failed (%s); the next restore tries again'
                                % (request.target_db, first_line(exc)))
        dropped = []
    facts['previous_dropped'] = dropped
    actions.extend('Dropped previous database %r (keep_previous: %d)' % (name, request.keep_previous)
                   for name in dropped)


def _check_counts(ctx, dbname, manifest):
    if manifest.get('row_counts') is None:
        return dict(name='row_counts', severity='error', status='skipped', failures=0, tables=[],
                    summary='no row counts to compare: the backup was not written by lifeboat')
    check_conn = ctx.options.connect(dbname)
    try:
        actual = exact_row_counts(check_conn)
    finally:
        check_conn.close()
    return compare_row_counts(manifest['row_counts'], actual)


def _owner(conn, dbname):
    return conn.execute('SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = %s', (dbname,)).fetchone()[0]


def _drop(conn, dbname):
    conn.execute(sql.SQL('DROP DATABASE IF EXISTS {} WITH (FORCE)').format(sql.Identifier(dbname)))


def _create(conn, dbname, settings, owner):
    """CREATE DATABASE from template0 with `settings` (encoding, lc_collate, lc_ctype, and an
    ICU or builtin locale with its provider)."""
    statement = sql.SQL('CREATE DATABASE {} TEMPLATE template0').format(sql.Identifier(dbname))
    if settings.get('encoding'):
        statement += sql.SQL(' ENCODING {}').format(sql.Literal(settings['encoding']))
    if settings.get('lc_collate') and settings.get('lc_ctype'):
        statement += sql.SQL(' LC_COLLATE {} LC_CTYPE {}').format(sql.Literal(settings['lc_collate']),
                                                                  sql.Literal(settings['lc_ctype']))
    provider = settings.get('locale_provider')
    if provider in ('icu', 'builtin') and settings.get('locale'):
        # The option names are keywords of the statement, chosen from these two, never from the manifest.
        statement += sql.SQL(' LOCALE_PROVIDER {} {} {}').format(
            sql.SQL(provider), sql.SQL('ICU_LOCALE' if provider == 'icu' else 'BUILTIN_LOCALE'),
            sql.Literal(settings['locale']))
    if owner:
        statement += sql.SQL(' OWNER {}').format(sql.Identifier(owner))
    conn.execute(statement)


SETTING_KEYS = ('encoding', 'lc_collate', 'lc_ctype', 'locale_provider', 'locale')


def _settings_text(settings):
    return ', '.join('%s %s' % (key, settings[key]) for key in SETTING_KEYS if settings.get(key)) or 'template0\'s'


def _probe(conn, target, settings, owner):
    """Create (and drop at once) a throwaway database exactly as the restore will create its
    own: None when that works, else the psycopg error. A CREATE DATABASE is the one check that
    knows what this server accepts (locales installed, encoding and locale agreeing, owner)."""
    name = probe_name(target)
    try:
        _create(conn, name, settings, owner)
    except psycopg.Error as exc:
        return exc
    _drop(conn, name)
    return None


def _seen_here(conn, settings, owner):
    """A database with these very settings is on this server already (the usual case: a backup
    of this server), template0 is here to copy, and the owner role exists: the create will work
    without a probe."""
    if sorted(settings) != sorted(('encoding', 'lc_collate', 'lc_ctype')):
        return False  # an ICU or builtin locale is proven by the probe
    return conn.execute(
        "SELECT EXISTS (SELECT FROM pg_database WHERE pg_encoding_to_char(encoding) = %s AND datcollate = %s "
        "AND datctype = %s) AND EXISTS (SELECT FROM pg_database WHERE datname = 'template0') "
        "AND (%s::text IS NULL OR EXISTS (SELECT FROM pg_roles WHERE rolname = %s))",
        (settings['encoding'], settings['lc_collate'], settings['lc_ctype'], owner, owner)).fetchone()[0]


def _creatable_settings(conn, request, backup, owner, actions):
    """The settings the restored database is created with, proven on this server before anything
    changes: the backup's database's, or - when this server cannot create those and the user
    allows it with locale_fallback - this server's own (template0's)."""
    recorded = backup.manifest.get('database_settings') or {}
    settings = dict((key, recorded[key]) for key in SETTING_KEYS if recorded.get(key))
    if _seen_here(conn, settings, owner):
        return settings
    error = _probe(conn, request.target_db, settings, owner)
    if error is None:
        return settings
    if not settings or error.sqlstate not in LOCALE_UNAVAILABLE:
        raise LifeboatError('this server cannot create database %r (%s) as the restore needs to: %s; nothing was '
                            'changed' % (request.target_db, _settings_text(settings), first_line(error)))
    here = conn.execute("SELECT pg_encoding_to_char(encoding), datcollate, datctype FROM pg_database "
                        "WHERE datname = 'template0'").fetchone()
    own = dict(encoding=here[0], lc_collate=here[1], lc_ctype=here[2])
    if not request.locale_fallback:
        raise LifeboatError('backup %s comes from a database with %s, which this server cannot create (%s); install '
                            'that locale here, or set locale_fallback: true to create database %r with this server\'s '
                            '%s instead; nothing was changed'
                            % (backup.backup_id, _settings_text(settings), first_line(error), request.target_db,
                               _settings_text(own)))
    second = _probe(conn, request.target_db, {}, owner)
    if second is not None:
        raise LifeboatError('this server cannot create database %r: %s; nothing was changed'
                            % (request.target_db, first_line(second)))
    actions.append('Backup %s comes from a database with %s, which this server cannot create (%s): database %r is '
                   'created with this server\'s %s instead (locale_fallback: true)'
                   % (backup.backup_id, _settings_text(settings), first_line(error),
                      request.target_db, _settings_text(own)))
    return {}


def _pg_restore(ctx, tool, archive, request, manifest):
    """pg_restore a custom or directory archive, or feed a plain dump to psql."""
    if container.in_container(ctx):
        container.run_restore(ctx, tool, archive, request, manifest, _pg_restore_options(request),
                              _table_follower(request.progress))
        return
    if manifest.get('format') == 'plain':
        # No --dbname: psql would parse a name holding '=' as a connection string; PGDATABASE is
        # only ever a name.
        argv = [tool.path, '--no-password', '--quiet', '--no-psqlrc', '--set=ON_ERROR_STOP=1', '--single-transaction']
        decompress = gzip.open if manifest['compression']['method'] == 'gzip' else None
        with PassFile(ctx.options, ctx.tmpdir) as passfile:
            env = ctx.options.tool_environment(request.target_db, passfile)
            if request.role:
                # psql has no --role: the session starts as the role instead (spaces escaped for PGOPTIONS).
                env['PGOPTIONS'] = '-c role=%s' % request.role.replace('\\', '\\\\').replace(' ', '\\ ')
            stream_from_file(argv, env, archive, 'psql into database %r' % request.target_db, decompress)
        return
    argv = [tool.path] + _pg_restore_options(request) + [archive]
    follow = _table_follower(request.progress)
    with PassFile(ctx.options, ctx.tmpdir) as passfile:
        env = ctx.options.tool_environment(request.target_db, passfile)
        run_following_stderr(argv, env, 'pg_restore into database %r' % request.target_db, follow)


def _pg_restore_options(request):
    """pg_restore's options before the archive, on the host as in a container."""
    # pg_restore only connects with --dbname, which it parses as a connection string: the name goes
    # in one, quoted (connection.dbname_argument).
    argv = ['--no-password', '--exit-on-error', '--verbose', dbname_argument(request.target_db),
            '--jobs=%d' % request.jobs]
    if request.no_owner:
        argv.append('--no-owner')
    if request.no_acl:
        argv.append('--no-acl')
    if request.role:
        argv.append('--role=%s' % request.role)
    return argv


def _table_follower(progress):
    """on_line for pg_restore --verbose's stderr: it names each table as it starts loading its rows."""
    def follow(line):
        loading = RESTORE_TABLE_LINE.search(line) if progress is not None else None
        if loading:
            progress.state['tables_done'] = (progress.state.get('tables_done') or 0) + 1
            progress.update(current_table=loading.group(1))
    return follow


def _run_checks(ctx, dbname, request, facts, actions):
    """The operator's own SQL checks on the restored database; any failure stops the restore."""
    if not request.checks:
        return
    phase(request, 'checking')
    # integrity's runner, on one read-only connection, 60 seconds a check.
    snapshot = Snapshot(lambda: ctx.options.connect(dbname, autocommit=False), 1)
    try:
        results = facts['custom_checks'] = run_checks(snapshot, [custom_check(c) for c in request.checks], 60,
                                                      SAMPLE_ROWS)
    finally:
        snapshot.close()
    broken = [r for r in results if r['status'] == ERROR]
    if broken:
        raise LifeboatError('; '.join(r['summary'] for r in broken))
    failed = [r for r in results if r['status'] == FAILED and r['severity'] == 'error']
    if failed:
        raise LifeboatError('check(s) failed on the restored copy: %s'
                            % '; '.join('%s (%s)' % (r['name'], r['summary']) for r in failed))
    actions.append('Ran %d check(s) on database %r: all passed (%s)'
                   % (len(results), dbname, ', '.join(r['name'] for r in results)))


def _finish(ctx, dbname, request, facts, actions):
    """Grants, materialized views and sequences in the restored database (finish.py)."""
    if not (request.grants or request.refresh_matviews or request.repair_sequences):
        return
    phase(request, 'finishing')
    conn = ctx.options.connect(dbname)
    try:
        if request.grants:
            facts['grants_applied'] = apply_grants(conn, request.grants)
            actions.extend('Ran %s in database %r' % (grant, dbname) for grant in facts['grants_applied'])
        if request.refresh_matviews:
            facts['matviews_refreshed'] = refresh_matviews(conn)
            actions.append('Refreshed %d materialized view(s) in database %r%s'
                           % (len(facts['matviews_refreshed']), dbname,
                              ': ' + ', '.join(facts['matviews_refreshed']) if facts['matviews_refreshed'] else ''))
        if request.repair_sequences:
            facts['sequences_repaired'] = repair_sequences(conn)
            # "past": a sequence feeding several columns moved past the furthest of them (targets).
            actions.extend('Moved sequence %s from %s past %s, the %s %s' % (
                item['sequence'], item['last_value'], item[edge_name(item['increment'])[0]],
                edge_name(item['increment'])[2], item['column']) for item in facts['sequences_repaired'])
    finally:
        conn.close()


def _after_failure(ctx, conn, request, owner, safety, reason, done):
    """Undo what a failed `new` or `replace` did (`done`: dropped the database, created it), and
    nothing else: a database this run did not create is never dropped. Every step tolerates what
    already happened, and whatever fails here still ends in one line naming the cause and the
    safety backup."""
    target = request.target_db
    if not done['dropped'] and not done['created']:
        return LifeboatError('%s; database %r was not touched' % (reason, target))
    if safety is None:
        try:
            if done['created']:
                _drop(conn, target)
        except psycopg.Error as second:
            reason = '%s; dropping the half-restored database %r also failed (%s)' % (reason, target, first_line(second))
        else:
            reason = '%s; the half-restored database %r was dropped' % (reason, target)
        if done['dropped']:
            return LifeboatError('%s; with safety_backup: false there was no safety backup, so what database %r held '
                                 'before this restore is lost: restore a backup of it (mode=new)' % (reason, target))
        return LifeboatError(reason)
    try:
        if done['created']:
            _drop(conn, target)
        # The safety backup's own settings: those of the database that was here, so they work here.
        _create(conn, target, safety['manifest'].get('database_settings') or {}, owner)
        rollback = RestoreRequest(target, safety['backup_id'], target, 'replace',
                                  jobs=request.jobs, no_owner=False, no_acl=False)
        safety_archive = os.path.join(safety['backup_path'], safety['manifest']['archive'])
        tool = ctx.finder.find('pg_restore', dump_major(safety['manifest']),
                               'putting back safety backup %s' % safety['backup_id'])
        _pg_restore(ctx, tool, safety_archive, rollback, safety['manifest'])
    except (LifeboatError, psycopg.Error, IOError, OSError) as second:
        return LifeboatError('%s; putting back the previous contents also failed (%s): restore safety backup %s '
                             'by hand (mode=replace, backup: %s)' % (reason, failure_line(second), safety['backup_id'],
                                                                     safety['backup_id']),
                             safety_backup_id=safety['backup_id'])
    return LifeboatError('%s; database %r was put back as it was from safety backup %s'
                         % (reason, target, safety['backup_id']), safety_backup_id=safety['backup_id'])


def _analyze(ctx, dbname):
    conn = ctx.options.connect(dbname)
    try:
        conn.execute('ANALYZE')
    finally:
        conn.close()
