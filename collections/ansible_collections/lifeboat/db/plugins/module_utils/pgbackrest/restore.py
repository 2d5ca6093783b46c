# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pgbackrest_restore module's task: restore a stanza to a target into a new data directory and port (a
scratch instance), start it, wait until recovery reaches the target and promotes, and report what it reached.

Everything is checked before the first write (see plan()); then the marker goes in first and is marked
complete last, so a run killed anywhere leaves a directory the next run knows to be lifeboat's and
restores afresh. The live cluster is only ever read through pgBackRest's repository."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import pwd
import re
import time

from ansible_collections.lifeboat.db.plugins.module_utils.common.clock import iso, utc_now
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.command import PgBackRest
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.instance import (
    Instance, archive_get_errors, log_size)
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.run import read_info
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.scratch import (
    HBA_FILE, LOG_FILE, STAGING, TABLESPACES, check_data_dir_place, check_port_free, check_settings, entries,
    hba_text, make_private_dir, postmaster_pid, process_alive, read_marker, remove_tree, scratch_settings,
    claim, socket_dir_for, stanza_data_paths, write_marker, write_private)
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.target import (
    choose_backup, check_not_in_future, format_lsn, lsn_end_of_archive, parse_lsn, parse_target)

DEBIAN_BIN_DIR = '/usr/lib/postgresql/%s/bin'
VERSION = re.compile(r'\(PostgreSQL\) (\d+)')


def os_user():
    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return str(os.geteuid())


class Plan(object):
    """What a run will do, settled before anything is written."""

    def __init__(self, **facts):
        self.__dict__.update(facts)


def run(ctx):
    p = ctx.params
    if os.geteuid() == 0:
        raise LifeboatError('pgbackrest_restore runs as root; run it as the database\'s OS user (become: true, '
                            'become_user: postgres): PostgreSQL will not start as root, and the files must be its own')
    data_dir = os.path.normpath(p['data_dir'])
    if p['state'] == 'absent':
        return absent(ctx, data_dir)
    plan = make_plan(ctx, data_dir)
    if plan.reuse:
        return reuse(ctx, plan)
    result = base_result(plan)
    result['actions'] = ['%s %s' % ('Would remove' if ctx.check_mode else 'Removed', action) for action in plan.actions]
    result['actions'].append('%s stanza %s backup %s into %s and recover to %s on port %d'
                             % ('Would restore' if ctx.check_mode else 'Restored', plan.command.stanza,
                                plan.backup['label'], plan.data_dir, plan.target.describe(), plan.port))
    result['changed'] = True
    if ctx.check_mode:
        result['state'] = p['state']
        return result
    return restore(ctx, plan, result)


def make_plan(ctx, data_dir):
    """Every check, in the order an operator fixes them, with nothing written: the target's syntax, the
    stanza and its backups, the target against them and the clock, bin_dir, data_dir, the port."""
    p = ctx.params
    target = parse_target(p['target_type'], p['target'], p['target_exclusive'])
    check_settings(p['settings'])
    if not 1 <= p['port'] <= 65535:
        raise LifeboatError('port must be from 1 to 65535, not %d' % p['port'])
    if p['timeout'] < 1:
        raise LifeboatError('timeout must be at least 1 second, not %d' % p['timeout'])
    command = PgBackRest(ctx.run_command, p['stanza'], config=p['config'], repo=p['repo'], binary=p['pgbackrest_bin'])
    command.check_inputs()
    facts = read_info(command)
    backup = choose_backup(target, facts['backups'], p['backup_set'])
    check_not_in_future(target, time.time(), facts['archives'], facts['backups'])
    major = backup_major(facts, backup)
    bin_dir = check_bin_dir(ctx.run_command, p['bin_dir'], major)
    check_setting_names(ctx.run_command, bin_dir, major, p['settings'])
    check_data_dir_place(data_dir, stanza_data_paths(command.config, command.stanza))
    port = p['port']
    socket_dir, short_socket = socket_dir_for(data_dir, port)
    plan = Plan(target=target, command=command, facts=facts, backup=backup, major=major, bin_dir=bin_dir,
                data_dir=data_dir, port=port, socket_dir=socket_dir, short_socket=short_socket,
                log_file=os.path.join(data_dir, LOG_FILE), reuse=None, remove=False, stop_first=False, actions=[],
                identity=identity(p, target, command))
    inspect_data_dir(plan)
    if not (plan.reuse and plan.reuse.get('running')):
        # A short socket folder may hold the socket of the instance that is about to be stopped and removed.
        own = () if socket_dir == data_dir or plan.stop_first else (socket_dir,)
        check_port_free(port, ('/var/run/postgresql', '/tmp') + own)
    return plan


def identity(p, target, command):
    """What makes a scratch instance the one asked for: a second run with the same is idempotent."""
    return dict(stanza=command.stanza, config=command.config, repo=command.repo, target=target.facts(),
                backup_set=p['backup_set'], port=p['port'])


def backup_major(facts, backup):
    versions = [db['version'] for db in facts['stanza']['databases'] if db['id'] == backup['db_id']]
    if not versions:
        raise LifeboatError('backup %s names database id %d, which the stanza does not list; check the repository with '
                            'pgbackrest info' % (backup['label'], backup['db_id']))
    return versions[0]


def check_bin_dir(run_command, bin_dir, major):
    bin_dir = bin_dir or DEBIAN_BIN_DIR % major
    for program in ('pg_ctl', 'postgres'):
        path = os.path.join(bin_dir, program)
        if not (os.path.isfile(path) and os.access(path, os.X_OK)):
            raise LifeboatError('%s has no %s: the backup is PostgreSQL %s; install its server package '
                                '(postgresql-%s) or set bin_dir to its binaries' % (bin_dir, program, major, major))
    rc, out, err = run_command([os.path.join(bin_dir, 'postgres'), '--version'], environ_update={'LC_ALL': 'C'})
    match = VERSION.search(out or '')
    if rc != 0 or not match:
        raise LifeboatError('%s/postgres --version failed (%s); set bin_dir to PostgreSQL %s\'s binaries'
                            % (bin_dir, (err or out or 'no output').strip()[:200], major))
    if match.group(1) != str(major):
        raise LifeboatError('%s holds PostgreSQL %s, but the backup is PostgreSQL %s; set bin_dir to PostgreSQL %s\'s '
                            'binaries (e.g. %s)' % (bin_dir, match.group(1), major, major, DEBIAN_BIN_DIR % major))
    return bin_dir


def check_setting_names(run_command, bin_dir, major, settings):
    """A setting this PostgreSQL does not know would stop the instance at start, after the restore: refuse it
    now (`postgres --describe-config` lists them; an extension's `prefix.name` cannot be checked this way)."""
    unknown = sorted(name for name in settings or {} if '.' not in name)
    if not unknown:
        return
    rc, out, err = run_command([os.path.join(bin_dir, 'postgres'), '--describe-config'], environ_update={'LC_ALL': 'C'})
    known = set(line.split('\t', 1)[0].lower() for line in (out or '').splitlines())
    if rc != 0 or not known:
        return  # not worth failing for: PostgreSQL names a bad setting itself at start
    unknown = [name for name in unknown if name.lower() not in known]
    if unknown:
        raise LifeboatError('settings.%s is not a PostgreSQL %s setting; check its name (postgres --describe-config '
                            'lists them)' % (unknown[0], major))


def inspect_data_dir(plan):
    """What is in data_dir decides the run: nothing (restore), lifeboat's instance of the same target (reuse),
    lifeboat's instance of another or an incomplete one (remove it and restore afresh, when not running)."""
    data_dir = plan.data_dir
    if not os.path.lexists(data_dir):
        return
    if not os.path.isdir(data_dir):
        raise LifeboatError('data_dir %s exists and is not a directory; set data_dir to a new directory' % data_dir)
    if os.stat(data_dir).st_uid != os.geteuid():
        raise LifeboatError('data_dir %s belongs to another user; the scratch instance\'s directory must be %s\'s '
                            '(or not exist yet)' % (data_dir, os_user()))
    found = entries(data_dir)
    if not found:
        return
    marker = read_marker(data_dir)
    if marker is None:
        raise LifeboatError('data_dir %s is not empty (%d entries, e.g. %s) and holds no lifeboat marker (%s); '
                            'lifeboat restores only into a new or empty directory - set data_dir to one'
                            % (data_dir, len(found), found[0], 'lifeboat-scratch.json'))
    running = postmaster_pid(data_dir)
    same = marker.get('state') == 'complete' and marker.get('identity') == plan.identity
    if same:
        plan.reuse = dict(marker=marker, running=bool(running))
        return
    if marker.get('state') == 'complete' and running:
        was = marker.get('identity') or {}
        raise LifeboatError('data_dir %s holds a running scratch instance of stanza %s restored to %s on port %s; '
                            'set data_dir to a new directory for %s, or remove that one first (state: absent)'
                            % (data_dir, was.get('stanza'), describe_target(was.get('target')), was.get('port'),
                               plan.target.describe()))
    owner = marker.get('pid')
    if marker.get('state') in ('restoring', 'recovering') and owner and owner != os.getpid() and process_alive(owner) \
            and owner_is_module(owner):
        raise LifeboatError('another lifeboat run (pid %d) is restoring into data_dir %s; wait for it, or set another '
                            'data_dir' % (owner, data_dir))
    plan.remove = True
    plan.stop_first = bool(running)
    plan.actions.append('the earlier scratch instance in %s (%s)' % (
        data_dir, 'incomplete: %s' % marker.get('state') if marker.get('state') != 'complete' else
        'restored to %s' % describe_target((marker.get('identity') or {}).get('target'))))


def owner_is_module(pid):
    # The marker's pid is the module process that wrote it; a recycled pid of another program does not count.
    try:
        with open('/proc/%d/cmdline' % pid, 'rb') as handle:
            return b'python' in handle.read()
    except (IOError, OSError):
        return False


def describe_target(target):
    if not target:
        return 'an unknown target'
    value = target.get('value')
    return '%s %s' % (target.get('type'), value) if value else target.get('type')


def base_result(plan):
    backup = plan.backup
    return dict(
        data_dir=plan.data_dir, port=plan.port, socket_dir=plan.socket_dir, log_file=plan.log_file,
        bin_dir=plan.bin_dir, os_user=os_user(), stanza=plan.command.stanza,
        backup=dict(label=backup['label'], type=backup['type'], stopped_at=backup['stopped_at'],
                    lsn_stop=backup.get('lsn_stop')),
        target=plan.target.facts(), reached=None, wal_replayed_bytes=None,
        seconds=dict(restore_files=None, recovery=None, total=None))


def instance_of(ctx, plan_or_marker):
    get = plan_or_marker.get if isinstance(plan_or_marker, dict) else lambda key: getattr(plan_or_marker, key)
    return Instance(ctx.run_command, get('bin_dir'), get('data_dir'), get('port'), get('socket_dir'), get('log_file'),
                    ctx.params['login_user'] or 'postgres', ctx.params['db'] or 'postgres')


def reuse(ctx, plan):
    """The scratch instance asked for is already there: report it; start or stop it as state asks."""
    marker = plan.reuse['marker']
    result = dict(marker['result'])
    result['changed'] = False
    instance = instance_of(ctx, marker['result'])
    running = plan.reuse['running']
    wanted = ctx.params['state']
    result['actions'] = ['Found the scratch instance of stanza %s restored to %s in %s (made %s)'
                         % (plan.command.stanza, plan.target.describe(), plan.data_dir, marker.get('started_at'))]
    if wanted == 'started' and not running:
        result['changed'] = True
        result['actions'].append('%s it on port %d' % ('Would start' if ctx.check_mode else 'Started', plan.port))
        if not ctx.check_mode:
            if plan.short_socket:
                make_private_dir(plan.socket_dir)  # /tmp may have been cleaned since (a reboot)
            offset = log_size(instance.log_file)
            instance.start()
            instance.wait_for_promotion(ctx.params['timeout'], offset)
    elif wanted == 'stopped' and running:
        result['changed'] = True
        result['actions'].append('%s it' % ('Would stop' if ctx.check_mode else 'Stopped'))
        if not ctx.check_mode:
            instance.stop()
    result['state'] = wanted
    return result


def restore(ctx, plan, result):
    clock = time.monotonic()
    instance = instance_of(ctx, plan)
    instance.recovery_hint = recovery_hint(plan)
    if plan.remove:
        if plan.stop_first:
            instance.stop('immediate')
        remove_tree(plan.data_dir)
    os.makedirs(plan.data_dir, 0o700, exist_ok=True)
    os.chmod(plan.data_dir, 0o700)
    marker = dict(identity=plan.identity, state='restoring', started_at=iso(utc_now()), pid=os.getpid(),
                  result=None, bin_dir=plan.bin_dir, socket_dir=plan.socket_dir if plan.short_socket else None)
    # The first marker is created exclusively: of two runs given the same empty data_dir, one goes on.
    if not claim(plan.data_dir, marker):
        raise LifeboatError('another lifeboat run claimed data_dir %s a moment ago; wait for it, or set another '
                            'data_dir' % plan.data_dir)
    try:
        restore_files(plan)
        restored = time.monotonic()
        write_scratch_config(plan, ctx.params['settings'])
        marker = write_marker(plan.data_dir, dict(marker, state='recovering'))
        offset = log_size(plan.log_file)
        instance.start()
        instance.wait_for_promotion(ctx.params['timeout'], offset)
        reached = instance.read_back(offset)
        check_reached(plan, reached, instance)
        recovered = time.monotonic()
    except BaseException as exc:
        # The instance never stays up half-made; the marker says the directory is lifeboat's to redo.
        try:
            instance.stop('immediate')
        finally:
            write_marker(plan.data_dir, dict(marker, state='failed', error=getattr(exc, 'msg', None) or str(exc)))
        raise
    result['reached'] = dict((key, reached[key]) for key in ('timeline', 'lsn', 'last_replayed_at', 'promoted'))
    result['reached'].update(stop_reason=reached['stop_reason'], stopping=reached['stopping'])
    if reached['lsn'] and plan.backup.get('lsn_stop'):
        result['wal_replayed_bytes'] = parse_lsn(reached['lsn']) - parse_lsn(plan.backup['lsn_stop'])
    result['seconds'] = dict(restore_files=round(restored - clock, 3), recovery=round(recovered - restored, 3),
                             total=round(time.monotonic() - clock, 3))
    result['actions'].append('Recovery reached %s on timeline %d at LSN %s and promoted'
                             % (plan.target.describe(), reached['timeline'], reached['lsn']))
    if ctx.params['state'] == 'stopped':
        instance.stop()
        result['actions'].append('Stopped the scratch instance')
    result['state'] = ctx.params['state']
    stored = dict(result, actions=[], changed=False)
    write_marker(plan.data_dir, dict(marker, state='complete', finished_at=iso(utc_now()), result=stored))
    return result


def restore_files(plan):
    """pgbackrest restore into the staging folder, then its files move up into data_dir beside the marker.
    Tablespaces go inside data_dir too, so nothing is written where the live cluster keeps its files."""
    staging = os.path.join(plan.data_dir, STAGING)
    os.mkdir(staging, 0o700)
    options = ['--pg1-path=%s' % staging, '--set=%s' % plan.backup['label'], '--archive-mode=off',
               '--tablespace-map-all=%s' % os.path.join(plan.data_dir, TABLESPACES)]
    options.extend(plan.target.pgbackrest_options())
    plan.command.run('restore', *options, log_file=True)
    for name in os.listdir(staging):
        os.rename(os.path.join(staging, name), os.path.join(plan.data_dir, name))
    os.rmdir(staging)
    # pgBackRest's restore_command names the folder it restored into; archive-get reads pg_control there.
    auto = os.path.join(plan.data_dir, 'postgresql.auto.conf')
    with open(auto, encoding='utf-8') as handle:
        text = handle.read()
    old, new = '--pg1-path=%s ' % staging, '--pg1-path=%s ' % plan.data_dir
    if old not in text:
        raise LifeboatError('pgBackRest wrote no restore_command naming %s in postgresql.auto.conf; this pgBackRest '
                            'does not restore as 2.45 does - check pgbackrest_bin' % staging)
    write_private(auto, text.replace(old, new))


def write_scratch_config(plan, settings):
    data_dir = plan.data_dir
    # Debian keeps postgresql.conf, pg_hba.conf and pg_ident.conf in /etc: a backup of its cluster has none.
    for name, text in (('postgresql.conf', '# written by lifeboat.db.pgbackrest_restore: the backup had none (Debian '
                                           'keeps it in /etc/postgresql)\n'),
                       ('pg_ident.conf', '# written by lifeboat.db.pgbackrest_restore: the backup had none\n')):
        if not os.path.exists(os.path.join(data_dir, name)):
            write_private(os.path.join(data_dir, name), text)
    write_private(os.path.join(data_dir, HBA_FILE), hba_text(os_user(), settings))
    if plan.short_socket:
        make_private_dir(plan.socket_dir)
    write_private(os.path.join(data_dir, 'postgresql.auto.conf'),
                  scratch_settings(plan.port, plan.socket_dir, data_dir, settings), mode='a')


def recovery_hint(plan):
    """What to do when recovery ends before the target, for this kind of target."""
    verify = 'run pgbackrest verify to find WAL the archive lacks or cannot read'
    if plan.target.kind == 'name':
        return ('check the name, or set backup_set to a backup taken before the restore point was made (backup %s was '
                'restored; pg_create_restore_point() earlier than it is never replayed), or %s'
                % (plan.backup['label'], verify))
    if plan.target.kind in ('time', 'lsn'):
        return ('if the target is recent, its WAL may not be archived yet: run pg_switch_wal() on the cluster and wait '
                'for archiving; else %s' % verify)
    return verify


def check_reached(plan, reached, instance):
    """The target was reached, not merely recovery ended: PostgreSQL logs `recovery stopping` at a time, LSN,
    name or immediate target; `latest` must end in the archive's last segment."""
    target = plan.target
    if target.kind != 'latest' and not reached['stopping']:
        raise LifeboatError('the scratch instance promoted without logging "recovery stopping" for %s; the target was '
                            'not reached - see %s' % (target.describe(), plan.log_file))
    if target.kind == 'time' and reached['last_replayed_at']:
        # Both are 'YYYY-MM-DD HH:MM:SS.ffffff+00' here, so they compare as text.
        last = reached['last_replayed_at'].replace('T', ' ').replace('Z', '+00')
        if last > target.value:
            raise LifeboatError('recovery replayed a transaction at %s, after target %s; see %s'
                                % (reached['last_replayed_at'], target.value, plan.log_file))
    if target.kind == 'latest':
        end = lsn_end_of_archive(plan.facts['archives'], plan.facts['backups'])
        # An archived segment always holds WAL, so recovery that read the last one ended past its start.
        if end is not None and reached['lsn'] and parse_lsn(reached['lsn']) <= end:
            raise LifeboatError('recovery to the end of the archive stopped at LSN %s, before the end of its last '
                                'segment (which starts at %s): WAL could not be read%s; run pgbackrest verify - the '
                                'live cluster was not touched'
                                % (reached['lsn'], format_lsn(end), archive_detail(instance)))


def archive_detail(instance):
    errors = archive_get_errors(instance.log_file, 0)
    return ' (pgBackRest archive-get: %s)' % errors[-1] if errors else ''


def absent(ctx, data_dir):
    """Stop a lifeboat scratch instance and remove its directory; never a directory without the marker."""
    result = dict(changed=False, data_dir=data_dir, state='absent', actions=[])
    if not os.path.lexists(data_dir):
        result['actions'].append('%s does not exist' % data_dir)
        return result
    if os.path.islink(data_dir) or not os.path.isdir(data_dir):
        raise LifeboatError('data_dir %s is not a directory; lifeboat removes only a scratch instance\'s directory'
                            % data_dir)
    marker = read_marker(data_dir)
    if marker is None:
        if not entries(data_dir):
            raise LifeboatError('data_dir %s is an empty directory lifeboat did not make; remove it by hand if it is '
                                'not needed' % data_dir)
        raise LifeboatError('data_dir %s holds no lifeboat marker (lifeboat-scratch.json): it is not a scratch '
                            'instance lifeboat made, so it is not removed; check data_dir' % data_dir)
    stored = marker.get('result') or {}
    result['changed'] = True
    running = postmaster_pid(data_dir)
    if running:
        result['actions'].append('%s the scratch instance (pid %d)' % ('Would stop' if ctx.check_mode else 'Stopped',
                                                                       running))
    result['actions'].append('%s %s' % ('Would remove' if ctx.check_mode else 'Removed', data_dir))
    if ctx.check_mode:
        return result
    if running:
        bin_dir = marker.get('bin_dir') or stored.get('bin_dir')
        if not bin_dir:
            raise LifeboatError('the scratch instance in %s runs (pid %d) and its marker names no bin_dir; stop it '
                                'with pg_ctl -D %s stop, then run again' % (data_dir, running, data_dir))
        Instance(ctx.run_command, bin_dir, data_dir, None, None, None, None, None).stop()
    remove_tree(data_dir)
    socket_dir = marker.get('socket_dir')
    if socket_dir and os.path.isdir(socket_dir) and not os.path.islink(socket_dir):
        try:
            os.rmdir(socket_dir)
        except OSError:
            pass  # a socket of another instance still in it: it stays
    return result
