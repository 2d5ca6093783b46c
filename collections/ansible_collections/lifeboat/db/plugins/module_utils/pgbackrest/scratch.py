# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scratch instance's directory: what may be restored into, lifeboat's marker file that proves a
directory is lifeboat's to remove, the configuration a restored cluster needs to start beside the live
one, and the checks (port, socket path) made before anything is written."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import configparser
import errno
import glob
import hashlib
import json
import os
import re
import shutil
import socket

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

MARKER = 'lifeboat-scratch.json'
# pgBackRest restores only into an empty directory (and its --delta removes files it does not know), so it
# restores into this folder of the data directory, which already holds the marker; the files move up after.
STAGING = 'lifeboat-restoring'
TABLESPACES = 'lifeboat-tablespaces'
HBA_FILE = 'lifeboat_hba.conf'
LOG_FILE = 'lifeboat-scratch.log'
MARKER_KIND = 'lifeboat.db.pgbackrest_restore scratch instance'
# sun_path holds 108 bytes with the terminating zero.
MAX_SOCKET_PATH = 107
DEFAULT_CONFIG = '/etc/pgbackrest/pgbackrest.conf'
DEFAULT_INCLUDE_PATH = '/etc/pgbackrest/conf.d'
SETTING_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_.]*$')
# What lifeboat sets itself (the module option to use instead), or must never let a scratch instance have.
RESERVED_SETTINGS = dict(
    port='set the port option', unix_socket_directories='lifeboat puts the socket in data_dir (socket_dir)',
    archive_mode='a restored cluster must never archive into the live stanza', archive_command='archive_mode is off',
    archive_library='archive_mode is off', restore_command='pgBackRest writes it',
    data_directory='set data_dir', config_file='lifeboat starts the instance with data_dir\'s configuration',
    external_pid_file='it could overwrite the live cluster\'s pid file',
    lc_messages='lifeboat reads the log in English',
    log_line_prefix='lifeboat reads the log', logging_collector='lifeboat reads the log from log_file',
    log_destination='lifeboat reads the log from log_file')


def config_parsers(config):
    """The pgBackRest configuration as pgBackRest reads it - the file, and conf.d with the default one - one
    parser per file that exists. A file that cannot be read or parsed is one line: it names the live data
    directories, so it is never skipped."""
    files = [config or DEFAULT_CONFIG]
    if not config or os.path.abspath(config) == DEFAULT_CONFIG:
        files.extend(sorted(glob.glob(os.path.join(DEFAULT_INCLUDE_PATH, '*.conf'))))
    parsers = []
    for path in files:
        if not os.path.exists(path):
            continue
        parser = configparser.RawConfigParser(strict=False, interpolation=None)
        # Read explicitly: configparser.read() skips a file it cannot open, and then no pg1-path would be guarded.
        try:
            with open(path, encoding='utf-8') as handle:
                parser.read_file(handle, source=path)
        except (IOError, OSError) as exc:
            raise LifeboatError('cannot read pgBackRest configuration %s (%s); it names the live data directories - '
                                'run as a user that may read it (become_user: postgres)' % (path, exc.strerror or exc))
        except (configparser.Error, UnicodeDecodeError) as exc:
            raise LifeboatError('cannot read pgBackRest configuration %s (%s); check config'
                                % (path, str(exc).splitlines()[0][:200]))
        parsers.append(parser)
    return parsers


def stanza_data_paths(config, stanza):
    """Every pgN-path of the stanza in its pgBackRest configuration (and conf.d when it is the default one):
    a scratch instance must never be restored into or inside one of them."""
    paths = []
    for parser in config_parsers(config):
        for section in (stanza, stanza + ':restore', 'global', 'global:restore'):
            if parser.has_section(section):
                paths.extend(value for key, value in parser.items(section) if re.match(r'^pg\d+-path$', key))
    return [os.path.realpath(p.strip()) for p in paths if p.strip()]


def check_data_dir_place(data_dir, live_paths):
    if not os.path.isabs(data_dir):
        raise LifeboatError('data_dir %r must be an absolute path' % data_dir)
    if os.path.islink(data_dir):
        raise LifeboatError('data_dir %s is a symbolic link; give the real directory (lifeboat never follows a link '
                            'it may remove)' % data_dir)
    real = os.path.realpath(data_dir)
    for live in live_paths:
        if real == live or real.startswith(live.rstrip('/') + '/'):
            raise LifeboatError('data_dir %s is %sthe stanza\'s own data directory %s (its pg1-path): a restore never '
                                'goes over the live cluster; set data_dir to a new directory, e.g. %s-pitr'
                                % (data_dir, 'inside ' if real != live else '', live, live.rstrip('/')))


def read_marker(data_dir):
    """The marker of a lifeboat scratch instance in data_dir, or None when there is none."""
    path = os.path.join(data_dir, MARKER)
    if os.path.islink(path) or not os.path.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as handle:
            marker = json.load(handle)
    except (ValueError, UnicodeDecodeError):
        # A marker cut short (the disk filled, the run was killed while writing it) is still ours.
        return dict(kind=MARKER_KIND, state='unreadable')
    if not isinstance(marker, dict) or marker.get('kind') != MARKER_KIND:
        return None
    return marker


def write_marker(data_dir, marker):
    """Write the marker atomically (a temporary file renamed over it), so it is never half written."""
    marker = dict(marker, kind=MARKER_KIND)
    path = os.path.join(data_dir, MARKER)
    temporary = path + '.tmp'
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        json.dump(marker, handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.rename(temporary, path)
    return marker


def claim(data_dir, marker):
    """Create the marker only if there is none (O_EXCL); False when another run was first."""
    path = os.path.join(data_dir, MARKER)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            return False
        raise
    with os.fdopen(fd, 'w', encoding='utf-8') as handle:
        json.dump(dict(marker, kind=MARKER_KIND), handle, indent=1, sort_keys=True)
        handle.flush()
        os.fsync(handle.fileno())
    return True


def entries(data_dir):
    return sorted(os.listdir(data_dir)) if os.path.isdir(data_dir) else []


def postmaster_pid(data_dir):
    """The pid of a live postmaster of data_dir (from postmaster.pid), or None."""
    path = os.path.join(data_dir, 'postmaster.pid')
    try:
        with open(path, encoding='utf-8', errors='replace') as handle:
            first = handle.readline().strip()
    except (IOError, OSError):
        return None
    if not first.isdigit():
        return None
    pid = int(first)
    return pid if process_alive(pid) else None


def process_alive(pid):
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    # A zombie (a postmaster that exited while its parent lives on) is not running.
    try:
        with open('/proc/%d/stat' % pid, encoding='utf-8', errors='replace') as handle:
            return handle.read().rsplit(')', 1)[-1].split()[0] != 'Z'
    except (IOError, OSError, IndexError):
        return True


def remove_tree(path):
    """Remove a directory tree without following any symbolic link in it (shutil's fd-based rmtree)."""
    if os.path.islink(path):
        raise LifeboatError('%s is a symbolic link; lifeboat removes only directories it made' % path)
    if not shutil.rmtree.avoids_symlink_attacks:
        raise LifeboatError('this Python cannot remove %s without risk of following links; remove it by hand' % path)
    shutil.rmtree(path)


def socket_dir_for(data_dir, port):
    """data_dir, or when a socket there would pass the Unix limit (107 bytes), a short private folder."""
    if len(os.path.join(data_dir, '.s.PGSQL.%d' % port)) <= MAX_SOCKET_PATH:
        return data_dir, False
    digest = hashlib.sha256(os.path.realpath(data_dir).encode('utf-8')).hexdigest()[:12]
    return os.path.join('/tmp', 'lifeboat-sock-%s' % digest), True


def make_private_dir(path):
    """A 0700 folder of this user (made, or one lifeboat made before): the socket's only protection."""
    try:
        os.mkdir(path, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise
    info = os.lstat(path)
    if os.path.islink(path) or not os.path.isdir(path) or info.st_uid != os.geteuid():
        raise LifeboatError('socket folder %s exists and is not a directory of this user; remove it, or give a shorter '
                            'data_dir so the socket can live in it' % path)
    os.chmod(path, 0o700)


def check_port_free(port, socket_dirs=('/var/run/postgresql', '/tmp')):
    """Refuse a port something listens on (TCP, either family) or a local PostgreSQL has its socket on."""
    if not 1 <= port <= 65535:
        raise LifeboatError('port must be from 1 to 65535, not %d' % port)
    for family, address in ((socket.AF_INET, '0.0.0.0'), (socket.AF_INET6, '::')):
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 on this host
        try:
            # SO_REUSEADDR: a port with only connections in TIME_WAIT is free for a server.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                probe.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            probe.bind((address, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise LifeboatError('port %d is taken on this host (something listens on it); set port to a free one'
                                    % port)
            if exc.errno != errno.EADDRNOTAVAIL:
                raise
        finally:
            probe.close()
    for folder in socket_dirs:
        for name in ('.s.PGSQL.%d' % port, '.s.PGSQL.%d.lock' % port):
            if os.path.exists(os.path.join(folder, name)):
                raise LifeboatError('port %d is taken on this host: a PostgreSQL socket %s is in %s; set port to a '
                                    'free one' % (port, name, folder))


def quote(value):
    """A postgresql.conf value: numbers and booleans as they are, anything else a quoted string."""
    if isinstance(value, bool):
        return 'on' if value else 'off'
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    if any(ord(ch) < 32 for ch in text):
        raise LifeboatError('a setting value holds a control character (%r); settings are single-line values' % text)
    return "'%s'" % text.replace('\\', '\\\\').replace("'", "''")


def check_settings(settings):
    for name, value in (settings or {}).items():
        if not isinstance(name, str) or not SETTING_NAME.match(name):
            raise LifeboatError('settings key %r is not a PostgreSQL setting name' % (name,))
        if name.lower() in RESERVED_SETTINGS or name.lower().startswith('recovery_target'):
            raise LifeboatError('settings.%s is set by lifeboat for a scratch instance (%s); remove it from settings'
                                % (name, RESERVED_SETTINGS.get(name.lower(), 'set target_type and target')))
        if isinstance(value, (dict, list)) or value is None:
            raise LifeboatError('settings.%s must be a string, number or boolean' % name)
        quote(value)


def scratch_settings(port, socket_dir, data_dir, settings):
    """Settings appended to postgresql.auto.conf, after pgBackRest's recovery lines, so they win over the
    restored postgresql.conf (the last occurrence of a setting counts)."""
    ours = [
        ('port', port),
        ('listen_addresses', ''),
        ('unix_socket_directories', socket_dir),
        # A restored cluster must never push WAL into the live stanza's archive.
        ('archive_mode', 'off'),
        ('hba_file', os.path.join(data_dir, HBA_FILE)),
        # The restored configuration may name the live cluster's (Debian's /var/run/postgresql/15-main.pid).
        ('external_pid_file', os.path.join(data_dir, 'lifeboat-scratch.pid')),
        ('hot_standby', 'on'),
        # The log lifeboat reads (pg_ctl -l): English, one known prefix, never a collector's own files.
        ('logging_collector', 'off'),
        ('log_destination', 'stderr'),
        ('lc_messages', 'C'),
        ('log_line_prefix', '%m [%p] '),
        ('log_min_messages', 'warning'),
    ]
    given = dict(settings or {})
    lines = ['', '# lifeboat.db.pgbackrest_restore: scratch instance settings; they come last so they win over the',
             '# restored postgresql.conf.']
    for name, value in ours:
        if name in given:
            value = given.pop(name)
        lines.append('%s = %s' % (name, quote(value)))
    lines.extend('%s = %s' % (name, quote(value)) for name, value in sorted(given.items()))
    return '\n'.join(lines) + '\n'


def hba_text(os_user, settings):
    """Local connections only, through a socket in a 0700 folder of the instance's user: only that user (and
    root) can reach it, so it needs no password of the live cluster. TCP only when settings asks for it."""
    lines = ['# lifeboat.db.pgbackrest_restore: a scratch instance, reachable by %s through its private socket folder'
             % os_user, 'local all all trust']
    if (settings or {}).get('listen_addresses'):
        lines.extend(['host all all 127.0.0.1/32 scram-sha-256', 'host all all ::1/128 scram-sha-256'])
    return '\n'.join(lines) + '\n'


def write_private(path, text, mode='w'):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode == 'a' else os.O_TRUNC) | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, mode, encoding='utf-8') as handle:
        handle.write(text)
