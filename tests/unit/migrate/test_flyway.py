# -*- coding: utf-8 -*-
"""Flyway compatibility without a server: names, versions, checksums, the lock number, info states."""
import shutil
import subprocess
from pathlib import Path

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.migrate import flyway, flyway_history, flyway_runner
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

JAVA_CHECKSUM = Path(__file__).resolve().parents[2] / 'tools' / 'FlywayChecksum.java'
FIXTURE_MIGRATIONS = Path(__file__).resolve().parents[2] / 'fixtures' / 'opendolphin' / 'migrations'

# Computed by Java's BufferedReader + CRC32 (tests/tools/FlywayChecksum.java), the way Flyway does.
KNOWN = [(b'SELECT 1;\n', 78787420), (b'SELECT 1;\r\n', 78787420), (b'\xef\xbb\xbfSELECT 1;', 78787420),
         ('CREATE TABLE café (x int);\n\nINSERT INTO café VALUES (1);\n'.encode(), -1036324904), (b'', 0)]


def write(folder, name, text='SELECT 1;\n'):
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize('raw,expected', KNOWN)
def test_checksum_matches_java(tmp_path, raw, expected):
    path = write(tmp_path, 'V1__x.sql', raw)
    assert flyway.Migration(str(path), 'V1__x.sql', 'versioned', version='1').checksum == expected


def test_checksum_ignores_line_endings_but_not_content():
    assert flyway.checksum('a\nb\n') == flyway.checksum('a\r\nb\r\n') == flyway.checksum('a\rb')
    assert flyway.checksum('a\nb\n') != flyway.checksum('a\nb c\n')
    # A form feed is part of a line for Java's readLine (str.splitlines() would split there).
    assert flyway.checksum('a\fb') != flyway.checksum('a\nb')


@pytest.mark.skipif(not shutil.which('java'), reason='no java to cross-check with')
def test_checksum_of_every_fixture_migration_matches_java(tmp_path):
    files = sorted(FIXTURE_MIGRATIONS.rglob('*.sql'))
    assert len(files) >= 20
    out = subprocess.run(['java', str(JAVA_CHECKSUM), *map(str, files)], capture_output=True, text=True,
                         check=True, timeout=120).stdout
    java = dict((line.split('\t')[1], int(line.split('\t')[0])) for line in out.splitlines())
    for path in files:
        text = path.read_bytes().decode('utf-8').lstrip('\ufeff')
        assert flyway.checksum(text) == java[str(path)], path


def test_lock_number_is_flyways():
    # Java: "\"public\".\"flyway_schema_history\"".hashCode() == 2125624436
    assert flyway_runner.java_hash('"public"."flyway_schema_history"') == 2125624436
    assert flyway_runner.lock_number('public', 'flyway_schema_history') == 77431708279161 + 2125624436
    assert flyway_runner.java_hash('\U0001F600') == 1772899  # a surrogate pair counts as two UTF-16 units


@pytest.mark.parametrize('text,key', [('1', (1,)), ('1.0', (1,)), ('1_0_0', (1,)), ('0002', (2,)),
                                      ('1.10', (1, 10)), ('2021.01.05', (2021, 1, 5)), ('0', (0,))])
def test_versions_compare_as_numbers(text, key):
    assert flyway.version_key(text, 'x') == key


def test_version_order_is_numeric():
    assert flyway.version_key('1.10', 'x') > flyway.version_key('1.9', 'x')
    assert flyway.version_key('10', 'x') > flyway.version_key('9', 'x')


@pytest.mark.parametrize('bad', ['', 'a', '1.a', '1..2', '1-2'])
def test_bad_versions_are_refused(bad):
    with pytest.raises(LifeboatError, match='must be numbers'):
        flyway.version_key(bad, 'V%s__x.sql' % bad)


def test_resolve_names_and_order(tmp_path):
    for name in ('V1__init.sql', 'V1_1__Add_users_table.sql', 'V10__later.sql', 'V2__second.sql',
                 'sub/V3__nested.sql', 'R__views.sql', 'R__a_functions.sql', 'beforeMigrate.sql',
                 'afterMigrate__grants.sql', 'afterMigrate.sql', 'beforeInfo.sql', 'notes.txt'):
        write(tmp_path, name)
    versioned, repeatables, callbacks = flyway.resolve([str(tmp_path)])
    assert [m.version for m in versioned] == ['1', '1.1', '2', '3', '10']
    assert versioned[1].description == 'Add users table'
    assert versioned[3].script == 'sub/V3__nested.sql'
    assert [m.description for m in repeatables] == ['a functions', 'views']
    assert [m.script for m in callbacks['afterMigrate']] == ['afterMigrate.sql', 'afterMigrate__grants.sql']
    assert [m.script for m in callbacks['beforeMigrate']] == ['beforeMigrate.sql']


@pytest.mark.parametrize('names,fragment', [
    (['V1__a.sql', 'V1.0__b.sql'], 'same version'),
    (['V1__a.sql', 'V01__b.sql'], 'same version'),
    (['R__a.sql', 'sub/R__a.sql'], 'same repeatable description'),
    (['V2_add_index.sql'], 'is not a migration name'),
    (['v2__lower.sql'], 'is not a migration name'),
    (['V__noversion.sql'], 'is not a migration name'),
    (['Vx__bad.sql'], 'must be numbers'),
])
def test_resolve_refuses_bad_names(tmp_path, names, fragment):
    for name in names:
        write(tmp_path, name)
    with pytest.raises(LifeboatError, match=fragment) as caught:
        flyway.resolve([str(tmp_path)])
    assert '\n' not in caught.value.msg


def test_script_config_marks_a_migration_non_transactional(tmp_path):
    write(tmp_path, 'V1__a.sql')
    write(tmp_path, 'V1__a.sql.conf', 'executeInTransaction=false\n')
    write(tmp_path, 'V2__b.sql')
    versioned, _, _ = flyway.resolve([str(tmp_path)])
    assert [m.in_transaction for m in versioned] == [False, None]
    write(tmp_path, 'V2__b.sql.conf', 'executeInTransaction=maybe\n')
    with pytest.raises(LifeboatError, match='must be true or false'):
        flyway.resolve([str(tmp_path)])


def history(*rows):
    found = flyway_history.History('public')
    found.exists = True
    found.rows = [dict(installed_rank=rank, version=version, description=description, type=kind, script=script,
                       checksum=crc, installed_by='u', installed_on='t', execution_time=1, success=success)
                  for rank, (version, description, kind, script, crc, success) in enumerate(rows, 1)]
    return found


def resolved(tmp_path, *names):
    for name in names:
        write(tmp_path, name, 'SELECT 1; -- %s\n' % name)
    return flyway.resolve([str(tmp_path)])


def by_script(entries):
    return dict((e['script'], e['state']) for e in entries)


def test_states_cover_flyways(tmp_path):
    versioned, repeatables, _ = resolved(tmp_path, 'V1__a.sql', 'V2__b.sql', 'V3__c.sql', 'V5__e.sql', 'V6__f.sql',
                                         'R__v.sql', 'R__w.sql')
    crc = dict((m.script, m.checksum) for m in versioned + repeatables)
    rows = history(('0', 'base', 'BASELINE', 'base', None, True),
                   ('2', 'b', 'SQL', 'V2__b.sql', crc['V2__b.sql'], True),
                   ('4', 'd', 'SQL', 'V4__d.sql', 123, True),               # file gone
                   ('5', 'e', 'SQL', 'V5__e.sql', crc['V5__e.sql'], False),  # failed
                   (None, 'v', 'SQL', 'R__v.sql', 1, True),                 # superseded
                   (None, 'v', 'SQL', 'R__v.sql', 2, True),                 # file changed since
                   (None, 'w', 'SQL', 'R__w.sql', crc['R__w.sql'], True),
                   ('9', 'z', 'SQL', 'V9__z.sql', 1, True))                 # newer than any file
    states = by_script(flyway_history.states(versioned, repeatables, rows))
    assert states['base'] == 'baseline'
    assert states['V2__b.sql'] == 'success'
    assert states['V4__d.sql'] == 'missing'
    assert states['V9__z.sql'] == 'future'
    assert states['V1__a.sql'] == 'ignored' and states['V3__c.sql'] == 'ignored'
    assert states['V6__f.sql'] == 'ignored'  # below V9, applied by a newer release
    assert [e['state'] for e in flyway_history.states(versioned, repeatables, rows) if e['script'] == 'R__v.sql'] == \
        ['superseded', 'outdated', 'pending']
    assert states['R__w.sql'] == 'success'
    entries = flyway_history.states(versioned, repeatables, rows)
    kinds = sorted(p['kind'] for p in flyway_history.problems(versioned, repeatables, rows, entries))
    assert kinds == ['failed', 'ignored', 'ignored', 'ignored', 'missing', 'pending']


def test_states_with_target_out_of_order_and_baseline(tmp_path):
    versioned, repeatables, _ = resolved(tmp_path, 'V1__a.sql', 'V2__b.sql', 'V3__c.sql', 'V4__d.sql')
    rows = history(('2', 'base', 'BASELINE', 'base', None, True))
    states = by_script(flyway_history.states(versioned, repeatables, rows, target='3'))
    assert states == {'base': 'baseline', 'V1__a.sql': 'below_baseline', 'V3__c.sql': 'pending',
                      'V4__d.sql': 'above_target'}
    crc = dict((m.script, m.checksum) for m in versioned)
    rows = history(('1', 'a', 'SQL', 'V1__a.sql', crc['V1__a.sql'], True),
                   ('3', 'c', 'SQL', 'V3__c.sql', crc['V3__c.sql'], True),
                   ('2', 'b', 'SQL', 'V2__b.sql', crc['V2__b.sql'], True))
    states = by_script(flyway_history.states(versioned, repeatables, rows))
    assert states['V2__b.sql'] == 'out_of_order' and states['V4__d.sql'] == 'pending'


def test_checksum_mismatch_is_a_problem_and_pending_can_be_ignored(tmp_path):
    versioned, repeatables, _ = resolved(tmp_path, 'V1__a.sql', 'V2__b.sql')
    rows = history(('1', 'a', 'SQL', 'V1__a.sql', 42, True))
    entries = flyway_history.states(versioned, repeatables, rows)
    found = flyway_history.problems(versioned, repeatables, rows, entries, ignore_pending=True)
    assert [p['kind'] for p in found] == ['checksum']
    assert 'applied 42, file %d' % versioned[0].checksum in found[0]['message']
