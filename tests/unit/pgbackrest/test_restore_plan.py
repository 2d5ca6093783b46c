# -*- coding: utf-8 -*-
"""What pgbackrest_restore decides from what is in data_dir, before anything is written: restore into it, report
the instance it already holds, remove lifeboat's earlier or incomplete one, or refuse in one line."""
import os
import subprocess
import sys

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest import scratch
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.restore import Plan, inspect_data_dir
from ansible_collections.lifeboat.db.plugins.module_utils.pgbackrest.target import parse_target

TARGET = parse_target('time', '2026-12-05 10:01:59+00', False)
IDENTITY = dict(stanza='main', config='/etc/pgbackrest/pgbackrest.conf', repo=None, target=TARGET.facts(),
                backup_set=None, port=5499)
OTHER = dict(IDENTITY, target=dict(type='latest', value=None, exclusive=False))


@pytest.fixture
def sleeper():
    """A live Python process: stands in for a postmaster (postmaster.pid) or a lifeboat run (the marker's pid)."""
    proc = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])
    yield proc.pid
    proc.kill()
    proc.wait()


def plan_for(data_dir):
    plan = Plan(target=TARGET, data_dir=str(data_dir), identity=IDENTITY, reuse=None, remove=False, stop_first=False,
                actions=[])
    inspect_data_dir(plan)
    return plan


def with_marker(data_dir, **marker):
    data_dir.mkdir(exist_ok=True)
    scratch.write_marker(str(data_dir), marker)
    (data_dir / 'PG_VERSION').write_text('15\n')
    return data_dir


def refused(data_dir, *fragments):
    with pytest.raises(LifeboatError) as caught:
        plan_for(data_dir)
    msg = caught.value.msg
    assert '\n' not in msg, msg
    for fragment in fragments:
        assert fragment in msg, msg


def test_a_new_or_empty_directory_is_restored_into(tmp_path):
    plan = plan_for(tmp_path / 'new')
    assert (plan.reuse, plan.remove, plan.actions) == (None, False, [])
    (tmp_path / 'empty').mkdir()
    assert plan_for(tmp_path / 'empty').remove is False


def test_someone_elses_files_are_never_touched(tmp_path):
    (tmp_path / 'crowded').mkdir()
    (tmp_path / 'crowded' / 'PG_VERSION').write_text('15\n')
    refused(tmp_path / 'crowded', 'is not empty (1 entries, e.g. PG_VERSION)', 'holds no lifeboat marker')
    (tmp_path / 'file').write_text('x')
    refused(tmp_path / 'file', 'exists and is not a directory')


def test_the_same_complete_instance_is_reused(tmp_path):
    plan = plan_for(with_marker(tmp_path / 'pitr', state='complete', identity=IDENTITY, result={}))
    assert plan.reuse['running'] is False and plan.remove is False


def test_another_or_an_incomplete_instance_not_running_is_removed_and_restored_afresh(tmp_path):
    plan = plan_for(with_marker(tmp_path / 'other', state='complete', identity=OTHER))
    assert plan.remove and not plan.stop_first and plan.reuse is None
    assert plan.actions == ['the earlier scratch instance in %s (restored to latest)' % (tmp_path / 'other')]
    for state in ('restoring', 'recovering', 'failed'):
        # The run that wrote the marker is gone (a pid no process has).
        plan = plan_for(with_marker(tmp_path / state, state=state, identity=IDENTITY, pid=2 ** 22 + 1))
        assert plan.remove and plan.actions == ['the earlier scratch instance in %s (incomplete: %s)'
                                                % (tmp_path / state, state)]
    (tmp_path / 'cut').mkdir()
    (tmp_path / 'cut' / scratch.MARKER).write_text('{"kind": "lifeboat.db.pgbackr')
    assert plan_for(tmp_path / 'cut').remove


def test_a_running_instance_of_another_target_is_refused(tmp_path, sleeper):
    data_dir = with_marker(tmp_path / 'running', state='complete', identity=OTHER)
    (data_dir / 'postmaster.pid').write_text('%d\n%s\n' % (sleeper, data_dir))
    refused(data_dir, 'holds a running scratch instance of stanza main restored to latest on port 5499',
            'set data_dir to a new directory for time 2026-12-05 10:01:59.000000+00', 'state: absent')
    # The same one running is simply reported.
    scratch.write_marker(str(data_dir), dict(state='complete', identity=IDENTITY))
    assert plan_for(data_dir).reuse['running'] is True


def test_an_incomplete_instance_left_running_is_stopped_first_unless_its_run_is_alive(tmp_path, sleeper):
    data_dir = with_marker(tmp_path / 'left', state='recovering', identity=IDENTITY, pid=2 ** 22 + 1)
    (data_dir / 'postmaster.pid').write_text('%d\n' % sleeper)
    plan = plan_for(data_dir)
    assert plan.remove and plan.stop_first
    scratch.write_marker(str(data_dir), dict(state='restoring', identity=IDENTITY, pid=sleeper))
    refused(data_dir, 'another lifeboat run (pid %d) is restoring into data_dir' % sleeper)


def test_a_directory_of_another_user_is_refused(tmp_path):
    if os.geteuid() != 0:
        pytest.skip('only root can give a folder to another user here')
    (tmp_path / 'theirs').mkdir()
    os.chown(str(tmp_path / 'theirs'), 65534, 65534)
    refused(tmp_path / 'theirs', 'belongs to another user')
