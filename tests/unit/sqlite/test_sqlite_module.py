# -*- coding: utf-8 -*-
"""lifeboat.db.sqlite's logic on real SQLite files, without Ansible: option shapes, the refusals
of a path, the data fix's transaction, read-only checks, who holds a file, check mode."""
import hashlib
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from ansible_collections.lifeboat.db.plugins.modules.sqlite import argument_spec
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.repository import Repository
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.checks import normalize_checks
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.database import live_file
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.execute import bounds
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.export import cell
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.holders import holders
from ansible_collections.lifeboat.db.plugins.module_utils.sqlite.run import run


class Task(object):
    """What run() reads of an AnsibleModule: the options with the module's defaults."""

    def __init__(self, check_mode=False, **params):
        self.params = dict((name, spec.get('default')) for name, spec in argument_spec().items())
        self.params.update(params)
        self.check_mode = check_mode
        self.repository = Repository(params['repository']) if params.get('repository') else None


@pytest.fixture
def db(tmp_path):
    path = tmp_path / 'app.db'
    conn = sqlite3.connect(str(path))
    conn.executescript("""
        CREATE TABLE runs (run_id INTEGER PRIMARY KEY, plan_job_id TEXT, created_at TEXT);
        INSERT INTO runs(plan_job_id, created_at) VALUES ('a', '2025-10-01'), ('b', '2025-10-07'), ('c', '2025-10-08');
    """)
    conn.commit()
    conn.close()
    return path


def rows(path, query):
    conn = sqlite3.connect(str(path), uri=str(path).startswith('file:'))
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize('given, expected', [(None, (0, None)), ({'max': 5}, (0, 5)), ({'min': 1, 'max': 1}, (1, 1))])
def test_expect_rows_bounds(given, expected):
    assert bounds(given) == expected


@pytest.mark.parametrize('given, message', [
    ({'min': 5, 'max': 1}, 'expect_rows.max (1) is below expect_rows.min (5)'),
    ({'max': -1}, 'expect_rows.max must be a whole number'),
    ({'min': True}, 'expect_rows.min must be a whole number'),
    ({'most': 3}, 'expect_rows takes min and max, not most'),
])
def test_expect_rows_mistakes_are_one_line(given, message):
    with pytest.raises(LifeboatError, match=message.replace('(', r'\(').replace(')', r'\)')):
        bounds(given)


@pytest.mark.parametrize('checks, message', [
    ([{'name': 'no sql'}], 'checks item 1 must be a dict with name and sql'),
    ([{'name': 'a', 'sql': 'SELECT 1', 'rows': 1, 'value': 1}], 'gives both rows and value'),
    ([{'name': 'a', 'sql': 'SELECT 1', 'rows': -1}], 'rows must be a whole number'),
    ([{'name': 'a', 'sql': 'SELECT 1', 'file': 'x.sql'}], 'unknown key'),
    ([{'name': 'a', 'sql': 'SELECT 1', 'severity': 'fatal'}], 'severity must be error or warning'),
    ([{'name': 'a', 'sql': 'SELECT 1'}, {'name': 'a', 'sql': 'SELECT 2'}], 'two checks are named'),
])
def test_check_shapes_are_refused_before_anything_runs(checks, message):
    with pytest.raises(LifeboatError, match=message):
        normalize_checks(checks)


def test_a_path_must_be_the_real_file(tmp_path, db):
    link = tmp_path / 'link.db'
    link.symlink_to(db)
    fifo = tmp_path / 'fifo.db'
    os.mkfifo(str(fifo))
    for path, message in ((tmp_path / 'nope.db', 'does not exist'), (tmp_path, 'is a directory'),
                          (link, 'is a symbolic link'), (fifo, 'is not a regular file')):
        with pytest.raises(LifeboatError, match=message):
            live_file(str(path))
    # A restore onto a new host: the file may be missing, its folder must exist.
    assert live_file(str(tmp_path / 'new.db'), may_be_missing=True) == str(tmp_path / 'new.db')
    with pytest.raises(LifeboatError, match='does not exist'):
        live_file(str(tmp_path / 'no-folder' / 'new.db'), may_be_missing=True)


def test_a_fix_that_is_no_data_fix_or_two_statements_is_rolled_back(db):
    for sql, message in (('CREATE TABLE sneaky (x)', 'one INSERT, UPDATE, DELETE or REPLACE'),
                         ('DELETE FROM runs; DELETE FROM runs', 'failed and was rolled back')):
        with pytest.raises(LifeboatError, match=message):
            run(Task(action='execute', path=str(db), sql=sql))
    assert rows(db, "SELECT count(*) FROM runs") == [(3,)]
    assert rows(db, "SELECT count(*) FROM sqlite_master WHERE name = 'sneaky'") == [(0,)]


def test_check_mode_runs_the_fix_and_rolls_it_back(db):
    dry = run(Task(check_mode=True, action='execute', path=str(db),
                   sql='UPDATE runs SET plan_job_id = NULL WHERE created_at >= ?', params=['2025-10-06'],
                   expect_rows={'max': 2}))
    assert dry['rows'] == 2 and dry['changed']
    assert rows(db, 'SELECT count(*) FROM runs WHERE plan_job_id IS NULL') == [(0,)]
    with pytest.raises(LifeboatError, match='params must be a list'):
        run(Task(action='execute', path=str(db), sql='DELETE FROM runs', params='oops'))


def test_a_check_cannot_write_and_says_so(db):
    result = run(Task(action='check', path=str(db), checks=[{'name': 'w', 'sql': 'DELETE FROM runs'},
                                                            {'name': 'late', 'sql': "SELECT 1 WHERE 0",
                                                             'severity': 'warning'}]))
    written = [c for c in result['checks'] if c['name'] == 'w'][0]
    assert result['failed'] and written['status'] == 'error' and 'readonly' in written['summary']
    assert rows(db, 'SELECT count(*) FROM runs') == [(3,)]


def test_a_hot_journal_is_named_not_called_damage(db):
    script = ("import sqlite3, os, sys\nc = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
              "c.execute('PRAGMA cache_size = 5')\nc.execute('BEGIN'); c.execute('DELETE FROM runs')\n"
              "c.executemany('INSERT INTO runs(plan_job_id) VALUES (?)', [('x' * 3000,)] * 400)\nos._exit(0)\n")
    # A small cache spills the transaction into the file before it ends: the journal is hot.
    subprocess.run([sys.executable, '-c', script, str(db)], check=True)
    assert os.path.exists(str(db) + '-journal')
    with pytest.raises(LifeboatError, match='hot journal'):
        run(Task(action='check', path=str(db)))


def test_holders_name_the_process_and_never_this_one(db, tmp_path):
    ready = tmp_path / 'ready'
    child = subprocess.Popen([sys.executable, '-c', 'import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1])\n'
                              'c.execute("SELECT 1 FROM runs").fetchall()\nopen(sys.argv[2], "w").close()\n'
                              'time.sleep(60)\n', str(db), str(ready)])
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        mine = sqlite3.connect(str(db))  # this process's own connection is never a holder
        found, dummy = holders(str(db))
        mine.close()
        assert [(h['pid'], h['files']) for h in found] == [(child.pid, [str(db)])]
        assert found[0]['command'].startswith(sys.executable + ' -c import sqlite3')
        repo = str(tmp_path / 'repo')
        run(Task(action='backup', path=str(db), repository=repo))
        with pytest.raises(LifeboatError, match='restore of %s refused: pid %d' % (db, child.pid)):
            run(Task(action='restore', path=str(db), repository=repo))
    finally:
        child.kill()
        child.wait()


def test_check_mode_backup_takes_nothing_and_names_what_retention_would_delete(db, tmp_path):
    repo = str(tmp_path / 'repo')
    first = run(Task(action='backup', path=str(db), repository=repo))
    dry = run(Task(check_mode=True, action='backup', path=str(db), repository=repo, keep_last=1))
    assert dry['deleted'] == [first['backup_id']]
    assert sorted(os.listdir(os.path.join(repo, 'app'))) == sorted(['.lock', first['backup_id']])
    manifest = json.loads(open(os.path.join(first['backup_path'], 'manifest.json')).read())
    assert manifest['row_counts'] == {'runs': 3} and manifest['sqlite']['journal_mode'] == 'delete'


def test_restore_takes_only_sqlite_sets(db, tmp_path):
    repo = tmp_path / 'repo'
    with pytest.raises(LifeboatError, match="no SQLite backup of 'app' in %s; take one with lifeboat.db.sqlite" % repo):
        run(Task(action='restore', path=str(db), repository=str(repo)))
    taken = run(Task(action='backup', path=str(db), repository=str(repo)))
    manifest_path = os.path.join(taken['backup_path'], 'manifest.json')
    manifest = json.loads(open(manifest_path).read())
    for change, message in (({'kind': 'full'}, 'is a full backup, not a SQLite one'),
                            ({'kind': 'sqlite-pre-restore', 'raw': True, 'reason': 'not a database'},
                             'byte-for-byte copy')):
        with open(manifest_path, 'w') as out:
            json.dump(dict(manifest, **change), out)
        with pytest.raises(LifeboatError, match=message):
            run(Task(action='restore', path=str(db), repository=str(repo), backup=taken['backup_id']))


def test_csv_cells():
    assert [cell(None), cell(b'\x00\xff'), cell('棚'), cell(1.5)] == ['', '00ff', '棚', 1.5]


def test_retention_keeps_the_newest_sets_and_never_a_pre_restore_set(db, tmp_path):
    repo = str(tmp_path / 'repo')
    taken = [run(Task(action='backup', path=str(db), repository=repo))['backup_id']]
    kept = run(Task(action='restore', path=str(db), repository=repo))['pre_restore']['backup_id']
    taken += [run(Task(action='backup', path=str(db), repository=repo, keep_last=2))['backup_id'] for dummy in range(2)]
    assert sorted(n for n in os.listdir(os.path.join(repo, 'app')) if not n.startswith('.')) == sorted(taken[1:] + [kept])


def test_what_the_live_wal_held_is_in_the_pre_restore_set(tmp_path):
    """A writer that died after committing into the -wal (never checkpointed): those rows are
    committed data, and the restore must not lose them."""
    live, repo = tmp_path / 'plan.db', str(tmp_path / 'repo')
    conn = sqlite3.connect(str(live))
    conn.executescript('PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);')
    conn.close()
    taken = run(Task(action='backup', path=str(live), repository=repo))
    script = ("import sqlite3, os, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('PRAGMA wal_autocheckpoint = 0')\n"
              "c.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(500)])\nc.commit()\nos._exit(0)\n")
    subprocess.run([sys.executable, '-c', script, str(live)], check=True)
    assert os.path.getsize(str(live) + '-wal') > 0
    restored = run(Task(action='restore', path=str(live), repository=repo))
    assert restored['backup_id'] == taken['backup_id'] and rows(live, 'SELECT count(*) FROM t') == [(1,)]
    kept = os.path.join(restored['pre_restore']['backup_path'], 'database.sqlite')
    assert rows('file:%s?mode=ro&immutable=1' % kept, 'SELECT count(*) FROM t') == [(501,)]
    assert not os.path.exists(str(live) + '-wal') or os.path.getsize(str(live) + '-wal') == 0
    assert not [n for n in os.listdir(str(tmp_path)) if '.lifeboat-' in n]  # no temporary or aside file left


def test_a_holder_is_found_by_the_file_it_has_open_not_by_its_name(db, tmp_path):
    """The task names the database through a symbolic link to its folder, the application by its
    real path (or the other way round): the names differ, the inode is the same."""
    (tmp_path / 'via').symlink_to(tmp_path)
    ready = tmp_path / 'ready'
    child = subprocess.Popen([sys.executable, '-c', 'import sqlite3, sys, time\nc = sqlite3.connect(sys.argv[1])\n'
                              'c.execute("SELECT 1 FROM runs").fetchall()\nopen(sys.argv[2], "w").close()\n'
                              'time.sleep(60)\n', str(db), str(ready)])
    try:
        deadline = time.monotonic() + 20
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [h['pid'] for h in holders(str(tmp_path / 'via' / 'app.db'))[0]] == [child.pid]
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize('folder', ['fullstack', 'unlocked'])
def test_a_damaged_file_is_restored_whatever_its_path_says(tmp_path, db, folder):
    """The pre-restore copy tells a busy source or a full repository from a file SQLite cannot
    read by the error's type: a path that contains 'full' or 'locked' changes nothing."""
    live = tmp_path / folder / 'app.db'
    live.parent.mkdir()
    os.rename(str(db), str(live))
    repo = str(tmp_path / 'repo')
    taken = run(Task(action='backup', path=str(live), repository=repo))
    with open(str(live), 'r+b') as handle:
        handle.write(b'not a database header')
    restored = run(Task(action='restore', path=str(live), repository=repo))
    assert restored['backup_id'] == taken['backup_id'] and restored['pre_restore']['raw']
    assert rows(live, 'SELECT count(*) FROM runs') == [(3,)]


def test_an_export_that_writes_the_same_csv_changes_nothing(db, tmp_path):
    """A rerun whose rows are what dest already holds reports no change and leaves dest as it
    was (same inode, no temporary beside it); check mode reports a change only when dest is
    missing or would differ."""
    dest = tmp_path / 'out' / 'runs.csv'
    dest.parent.mkdir()
    export = dict(action='export', path=str(db), query='SELECT * FROM runs ORDER BY run_id', dest=str(dest))
    assert run(Task(check_mode=True, **export))['changed'] and not dest.exists()
    first = run(Task(**export))
    written = os.stat(str(dest))
    assert first['changed'] and first['sha256'] == hashlib.sha256(dest.read_bytes()).hexdigest()
    assert first['size'] == written.st_size
    again = run(Task(**export))
    assert not again['changed'] and (again['sha256'], again['size'], again['rows']) == (first['sha256'], first['size'], 3)
    assert os.stat(str(dest)).st_ino == written.st_ino and os.listdir(str(dest.parent)) == ['runs.csv']
    assert not run(Task(check_mode=True, **export))['changed']
    with sqlite3.connect(str(db)) as conn:
        conn.execute("UPDATE runs SET plan_job_id = 'z' WHERE run_id = 1")
    conn.close()
    assert run(Task(check_mode=True, **export))['changed'] and os.stat(str(dest)).st_ino == written.st_ino
    changed = run(Task(**export))
    assert changed['changed'] and changed['sha256'] == hashlib.sha256(dest.read_bytes()).hexdigest() != first['sha256']


def test_a_rename_that_fails_leaves_the_live_wal_in_place(tmp_path):
    """The last step of a restore fails for real (the live file is immutable, so renaming over it
    is refused): the live database still has its -wal, so the rows committed only there are
    still in it, and nothing of the restore is left beside it."""
    live, repo = tmp_path / 'plan.db', str(tmp_path / 'repo')
    conn = sqlite3.connect(str(live))
    conn.executescript('PRAGMA journal_mode = WAL; CREATE TABLE t (x); INSERT INTO t VALUES (1);')
    conn.close()
    run(Task(action='backup', path=str(live), repository=repo))
    script = ("import sqlite3, os, sys\nc = sqlite3.connect(sys.argv[1])\nc.execute('PRAGMA wal_autocheckpoint = 0')\n"
              "c.executemany('INSERT INTO t VALUES (?)', [(i,) for i in range(500)])\nc.commit()\nos._exit(0)\n")
    subprocess.run([sys.executable, '-c', script, str(live)], check=True)
    wal = (tmp_path / 'plan.db-wal').read_bytes()
    if subprocess.run(['chattr', '+i', str(live)], capture_output=True).returncode != 0:
        pytest.skip('needs root and a filesystem with the immutable attribute (chattr +i)')
    try:
        with pytest.raises(LifeboatError, match='failed renaming the restored copy over it .Operation not permitted.; '
                                                'the live database is as it was'):
            run(Task(action='restore', path=str(live), repository=repo))
    finally:
        subprocess.run(['chattr', '-i', str(live)], check=True)
    assert (tmp_path / 'plan.db-wal').read_bytes() == wal
    assert sorted(os.listdir(str(tmp_path))) == ['plan.db', 'plan.db-shm', 'plan.db-wal', 'repo']
    assert rows('file:%s?mode=ro' % live, 'SELECT count(*) FROM t') == [(501,)]


def test_a_restore_onto_a_missing_file_says_whose_it_is(db, tmp_path):
    """A new host: no live file to take the owner and mode from, so the restored file is the
    module user's and 0600 - the result says so, for the operator to give it the application's."""
    repo = str(tmp_path / 'repo')
    run(Task(action='backup', path=str(db), repository=repo))
    new = tmp_path / 'new'
    new.mkdir()
    live = new / 'app.db'
    dry = run(Task(check_mode=True, action='restore', path=str(live), repository=repo, name='app'))
    assert 'no live file' in dry['actions'][-1] and not live.exists()
    restored = run(Task(action='restore', path=str(live), repository=repo, name='app'))
    assert restored['pre_restore'] is None and stat.S_IMODE(os.stat(str(live)).st_mode) == 0o600
    line = '%s is new: owned by uid %d gid %d, mode 0600' % (live, os.geteuid(), os.getegid())
    assert line in restored['actions'][-1] and line in restored['warnings'][0]
    assert rows(live, 'SELECT count(*) FROM runs') == [(3,)]
