# -*- coding: utf-8 -*-
"""Finding client tools that match the server, with fake executables in tmp_path."""
import os

import pytest

from ansible_collections.lifeboat.db.plugins.module_utils.pg import tools
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import ToolFinder, run_tool

from ..conftest import subprocess_run_command


def fake_tool(directory, name, version_line, rc=0):
    """An executable shell script that prints `version_line` like `pg_dump --version` does."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text('#!/bin/sh\necho "%s"\nexit %d\n' % (version_line, rc))
    path.chmod(0o755)
    return str(path)


def bin_dir(root, major, minor, name='pg_dump', suffix=''):
    directory = root / ('pg%d' % major) / 'bin'
    fake_tool(directory, name, '%s (PostgreSQL) %d.%d%s' % (name, major, minor, suffix))
    return str(directory)


class CountingRun(object):
    def __init__(self):
        self.calls = []

    def __call__(self, argv, environ_update=None):
        self.calls.append(list(argv))
        return subprocess_run_command(argv, environ_update)


def test_pg_bin_dir_new_enough_is_used(tmp_path):
    directory = bin_dir(tmp_path, 15, 18, suffix=' (Debian 15.18-0+deb12u1)')
    tool = ToolFinder(subprocess_run_command, directory).find('pg_dump', 15, 'the server is PostgreSQL 15.18')
    assert (tool.name, tool.path, tool.version, tool.major) == ('pg_dump', os.path.join(directory, 'pg_dump'),
                                                                '15.18', 15)
    assert tool.as_dict() == dict(name='pg_dump', path=os.path.join(directory, 'pg_dump'), version='15.18')
    newer = ToolFinder(subprocess_run_command, directory).find('pg_dump', 13, 'old server')
    assert newer.major == 15


def test_pg_bin_dir_too_old_lists_what_was_found(tmp_path, monkeypatch):
    directory = bin_dir(tmp_path, 15, 18)
    # pg_bin_dir is the only place looked at, even if a newer tool sits elsewhere.
    monkeypatch.setattr(tools, 'candidate_dirs', lambda: [bin_dir(tmp_path, 18, 6)])
    with pytest.raises(LifeboatError) as info:
        ToolFinder(subprocess_run_command, directory).find('pg_dump', 17, 'the server is PostgreSQL 17.2')
    message = info.value.msg
    assert 'pg_dump 17 or newer' in message
    assert '%s 15.18' % os.path.join(directory, 'pg_dump') in message
    assert 'searched %s' % directory in message
    assert 'pg18' not in message
    assert 'the server is PostgreSQL 17.2' in message


def test_nothing_found_says_none(tmp_path, monkeypatch):
    monkeypatch.setattr(tools, 'candidate_dirs', lambda: [str(tmp_path / 'empty')])
    with pytest.raises(LifeboatError, match='found only: none'):
        ToolFinder(subprocess_run_command).find('pg_restore', 16, 'why')


def test_smallest_sufficient_major_wins(tmp_path, monkeypatch):
    dirs = [bin_dir(tmp_path, 18, 6), bin_dir(tmp_path, 13, 22), bin_dir(tmp_path, 16, 10),
            bin_dir(tmp_path, 15, 18, suffix=' (Debian 15.18-0+deb12u1)')]
    monkeypatch.setattr(tools, 'candidate_dirs', lambda: dirs)
    finder = ToolFinder(subprocess_run_command)
    assert finder.find('pg_dump', 15, 'why').path == os.path.join(dirs[3], 'pg_dump')
    assert finder.find('pg_dump', 16, 'why').version == '16.10'
    assert finder.find('pg_dump', 17, 'why').version == '18.6'
    assert finder.find('pg_dump', 9, 'why').version == '13.22'
    with pytest.raises(LifeboatError) as info:
        finder.find('pg_dump', 19, 'why')
    for version in ('18.6', '13.22', '16.10', '15.18'):
        assert version in info.value.msg


def test_dirs_without_the_tool_or_broken_tools_are_ignored(tmp_path, monkeypatch):
    broken = tmp_path / 'broken'
    fake_tool(broken, 'pg_dump', 'pg_dump (PostgreSQL) 17.1', rc=1)
    garbage = tmp_path / 'garbage'
    fake_tool(garbage, 'pg_dump', 'something else 17.1')
    not_executable = tmp_path / 'noexec'
    fake_tool(not_executable, 'pg_dump', 'pg_dump (PostgreSQL) 17.1')
    (not_executable / 'pg_dump').chmod(0o644)
    good = bin_dir(tmp_path, 18, 6)
    monkeypatch.setattr(tools, 'candidate_dirs', lambda: [str(tmp_path / 'missing'), str(broken), str(garbage),
                                                          str(not_executable), good])
    found = ToolFinder(subprocess_run_command).candidates('pg_dump')
    assert [tool.path for tool in found] == [os.path.join(good, 'pg_dump')]


def test_pg_wrapper_symlinks_are_skipped(tmp_path, monkeypatch):
    share = tmp_path / 'share'
    wrapper = fake_tool(share, 'pg_wrapper', 'pg_dump (PostgreSQL) 16.1')  # would win if it were probed
    usr_bin = tmp_path / 'usr_bin'
    usr_bin.mkdir()
    os.symlink(wrapper, str(usr_bin / 'pg_dump'))
    real = bin_dir(tmp_path, 17, 5)
    monkeypatch.setattr(tools, 'candidate_dirs', lambda: [str(usr_bin), real])
    run = CountingRun()
    tool = ToolFinder(run).find('pg_dump', 16, 'why')
    assert tool.version == '17.5'
    assert run.calls == [[os.path.join(real, 'pg_dump'), '--version']]


def test_same_binary_through_two_dirs_is_probed_once(tmp_path, monkeypatch):
    real = bin_dir(tmp_path, 17, 5)
    alias = tmp_path / 'alias'
    os.symlink(real, str(alias))
    monkeypatch.setattr(tools, 'candidate_dirs', lambda: [real, str(alias)])
    run = CountingRun()
    finder = ToolFinder(run)
    assert len(finder.candidates('pg_dump')) == 1
    finder.candidates('pg_dump')
    assert len(run.calls) == 1  # probes are cached


@pytest.mark.parametrize('line, version, major', [
    ('pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)', '15.18', 15),
    ('pg_dump (PostgreSQL) 18.6', '18.6', 18),
    ('pg_restore (PostgreSQL) 9.6.24', '9.6', 9),
    ('pg_dump (PostgreSQL) 19devel', '19', 19),
])
def test_version_parsing(tmp_path, line, version, major):
    directory = tmp_path / 'bin'
    name = line.split()[0]
    fake_tool(directory, name, line)
    tool = ToolFinder(subprocess_run_command, str(directory)).find(name, 1, 'why')
    assert (tool.version, tool.major) == (version, major)


def test_candidate_dirs_starts_with_path(monkeypatch, tmp_path):
    monkeypatch.setenv('PATH', os.pathsep.join([str(tmp_path / 'a'), '', str(tmp_path / 'b')]))
    dirs = tools.candidate_dirs()
    assert dirs[:2] == [str(tmp_path / 'a'), str(tmp_path / 'b')]


def test_run_tool_quotes_the_error_line(tmp_path):
    script = tmp_path / 'pg_restore'
    script.write_text('#!/bin/sh\necho "progress on stdout"\n'
                      'printf "pg_restore: connecting to database\\npg_restore: error: could not open input file '
                      '\\"x.dump\\": No such file or directory\\npg_restore: hint: check the path\\n" >&2\nexit 1\n')
    script.chmod(0o755)
    with pytest.raises(LifeboatError) as info:
        run_tool(subprocess_run_command, [str(script)], {'PGPASSWORD': ''}, "pg_restore into database 'app'")
    assert info.value.msg == ("pg_restore into database 'app' failed: pg_restore: error: could not open input "
                              'file "x.dump": No such file or directory')


def test_run_tool_without_error_line_uses_last_line_or_exit_code(tmp_path):
    script = tmp_path / 'tool'
    script.write_text('#!/bin/sh\nprintf "first\\n\\nlast words\\n\\n" >&2\nexit 3\n')
    script.chmod(0o755)
    with pytest.raises(LifeboatError, match='^psql failed: last words$'):
        run_tool(subprocess_run_command, [str(script)], None, 'psql')
    silent = tmp_path / 'silent'
    silent.write_text('#!/bin/sh\nexit 4\n')
    silent.chmod(0o755)
    with pytest.raises(LifeboatError, match='^psql failed: exit code 4$'):
        run_tool(subprocess_run_command, [str(silent)], None, 'psql')


def test_run_tool_passes_environment_and_returns_stdout(tmp_path):
    script = tmp_path / 'tool'
    script.write_text('#!/bin/sh\necho "db=$PGDATABASE pw=[$PGPASSWORD]"\n')
    script.chmod(0o755)
    out = run_tool(subprocess_run_command, [str(script)], {'PGDATABASE': 'app', 'PGPASSWORD': ''}, 'tool')
    assert out == 'db=app pw=[]\n'
