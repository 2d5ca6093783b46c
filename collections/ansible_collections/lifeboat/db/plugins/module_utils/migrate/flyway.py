# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""SQL migrations the way Flyway runs them, so that one database can be managed by either tool.

Compatibility lives in four things, each kept exactly as Flyway has it:
- file names: `V<version>__<description>.sql` (version parts split on `.` or `_`, compared as
  numbers, trailing zero parts ignored), `R__<description>.sql`, callbacks `<event>.sql` and
  `<event>__<description>.sql`;
- the checksum: CRC32 over the file's lines in UTF-8, without their line endings, a leading BOM
  stripped, stored as a signed 32-bit integer (so line endings never change it);
- the history table `flyway_schema_history`: the same columns, types, primary key and index, and
  the same rows (`SQL`, `BASELINE` with `<< Flyway Baseline >>`, `success` false for a failed
  non-transactional migration);
- the lock: the same session advisory lock number, so lifeboat and Flyway never migrate at once.
This file resolves the files (names, versions, checksums); flyway_history reads the history table and
says each migration's state (Flyway's info and validate); flyway_runner runs scripts under the lock.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import zlib

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg import sql_script

MIGRATE_EVENTS = ('beforeMigrate', 'beforeEachMigrate', 'afterEachMigrate', 'afterEachMigrateError',
                  'afterMigrate', 'afterMigrateError')
OTHER_EVENTS = ('beforeValidate', 'afterValidate', 'afterValidateError', 'beforeBaseline', 'afterBaseline',
                'afterBaselineError', 'beforeRepair', 'afterRepair', 'afterRepairError', 'beforeInfo', 'afterInfo',
                'afterInfoError', 'beforeClean', 'afterClean', 'afterCleanError', 'beforeEachMigrateStatement',
                'afterEachMigrateStatement', 'afterEachMigrateStatementError', 'beforeUndo', 'afterUndo',
                'beforeEachUndo', 'afterEachUndo', 'afterUndoError', 'afterMigrateApplied', 'afterVersioned',
                'beforeConnect', 'afterConnect', 'beforeEachUndoStatement', 'afterEachUndoStatement',
                'createSchema', 'beforeCreateSchema')
VERSIONED_NAME = re.compile(r'^V([^_]+(?:_[^_]+)*?)__(.*)\.sql$')
REPEATABLE_NAME = re.compile(r'^R__(.+)\.sql$')


def checksum(text):
    """Flyway's checksum of a script's text (already BOM-stripped and decoded)."""
    crc = 0
    # Java's readLine() ends lines at \n, \r or \r\n only (str.splitlines() knows more endings).
    lines = re.split(r'\r\n|\r|\n', text)
    if lines[-1] == '':
        lines.pop()
    for line in lines:
        crc = zlib.crc32(line.encode('utf-8'), crc)
    return crc - (1 << 32) if crc >= 1 << 31 else crc



def version_key(text, where):
    """The comparable form of a version: numbers, trailing zero parts dropped (1.0 == 1)."""
    parts = re.split(r'[._]', text)
    if not text or not all(part.isdigit() for part in parts):
        raise LifeboatError('%s: version %r must be numbers separated by . or _ (e.g. V2_1__add_index.sql)'
                            % (where, text))
    numbers = [int(part) for part in parts]
    while len(numbers) > 1 and numbers[-1] == 0:
        numbers.pop()
    return tuple(numbers)


class Migration(object):
    """One resolved file: a versioned or repeatable migration, or a callback."""

    def __init__(self, path, script, category, version=None, description='', event=None):
        self.path = path
        self.script = script            # relative to its location, as Flyway records it
        self.category = category        # 'versioned', 'repeatable' or 'callback'
        self.version = version          # display text, e.g. '0002' or '1.1'
        self.key = version_key(version, script) if version is not None else None
        self.description = description
        self.event = event
        self.text = sql_script.read_script(path)
        self.checksum = checksum(self.text)
        self.in_transaction = _script_config(path)

    def label(self):
        return 'V%s %s' % (self.version, self.script) if self.version is not None else self.script


def _script_config(path):
    """Flyway's per-script config file `<script>.conf`: executeInTransaction=true|false, or None."""
    conf = path + '.conf'
    if not os.path.exists(conf):
        return None
    with open(conf) as handle:
        for line in handle:
            key, _, value = line.partition('=')
            if key.strip() == 'executeInTransaction':
                if value.strip().lower() not in ('true', 'false'):
                    raise LifeboatError('%s: executeInTransaction must be true or false, got %r'
                                        % (conf, value.strip()))
                return value.strip().lower() == 'true'
    return None


def resolve(locations):
    """Every migration and callback under `locations` (folders on the target, searched recursively).

    Returns (versioned sorted by version, repeatables sorted by description, callbacks by event).
    A file that is neither is an error, as it is with Flyway's validateMigrationNaming: a typo in
    a migration's name must not make it silently never run.
    """
    versioned, repeatables, callbacks = [], [], dict((event, []) for event in MIGRATE_EVENTS)
    for location in locations:
        if not os.path.isdir(location):
            raise LifeboatError('migrations folder %s does not exist on the target host; give the folder that holds '
                                'the V<version>__<description>.sql files' % location)
        for folder, dirs, files in os.walk(location):
            dirs.sort()
            for name in sorted(files):
                if not name.endswith('.sql'):
                    continue
                path = os.path.join(folder, name)
                script = os.path.relpath(path, location).replace(os.sep, '/')
                migration = _classify(path, script, name)
                if migration is None:
                    continue
                if migration.category == 'versioned':
                    versioned.append(migration)
                elif migration.category == 'repeatable':
                    repeatables.append(migration)
                else:
                    callbacks[migration.event].append(migration)
    _refuse_duplicates(versioned, lambda m: m.key, 'version')
    _refuse_duplicates(repeatables, lambda m: m.description, 'repeatable description')
    versioned.sort(key=lambda m: m.key)
    repeatables.sort(key=lambda m: m.description)
    for event in callbacks:
        callbacks[event].sort(key=lambda m: m.script)
    return versioned, repeatables, callbacks


def _classify(path, script, name):
    match = VERSIONED_NAME.match(name)
    if match:
        return Migration(path, script, 'versioned', version=match.group(1).replace('_', '.'),
                         description=match.group(2).replace('_', ' '))
    match = REPEATABLE_NAME.match(name)
    if match:
        return Migration(path, script, 'repeatable', description=match.group(1).replace('_', ' '))
    event, _, description = name[:-len('.sql')].partition('__')
    if event in MIGRATE_EVENTS:
        return Migration(path, script, 'callback', description=description.replace('_', ' '), event=event)
    if event in OTHER_EVENTS:
        return None  # a Flyway callback for an action lifeboat does not run; Flyway's own runs stay intact
    raise LifeboatError('%s is not a migration name: use V<version>__<description>.sql, R__<description>.sql '
                        'or a callback such as afterMigrate.sql (e.g. V2__add_index.sql), or move the file out '
                        'of the migrations folder' % script)


def _refuse_duplicates(migrations, key, what):
    seen = {}
    for migration in migrations:
        other = seen.setdefault(key(migration), migration)
        if other is not migration:
            raise LifeboatError('%s and %s have the same %s; rename one (Flyway refuses this too)'
                                % (other.script, migration.script, what))
