# -*- coding: utf-8 -*-
"""What ansible-test sanity's validate-modules would check, for every module of lifeboat.db.

ansible-test cannot run here, so this compares the documentation as ansible-doc renders it
(doc fragments merged) with the module's own argument_spec(), and checks the EXAMPLES.
"""
import copy
import functools
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml

from ..conftest import MODULES_DIR, REPO_ROOT, module_names

MODULES = module_names()
COLLECTION = 'lifeboat.db'
# validate-modules: options whose names look secret must set no_log explicitly (True or False).
NO_LOG_REGEX = re.compile(r'(?:pass(?!ive)|secret|token|key)', re.I)


def test_modules_are_discovered():
    # Guards the parametrization below: an empty glob would silently test nothing.
    assert {'dump', 'restore', 'integrity'} <= set(MODULES)


@functools.lru_cache(maxsize=None)
def _ansible_doc(name):
    """(returncode, parsed JSON or None, stderr) of `ansible-doc --json lifeboat.db.<name>`."""
    ansible_doc = os.path.join(os.path.dirname(sys.executable), 'ansible-doc')
    if not os.path.exists(ansible_doc):
        ansible_doc = shutil.which('ansible-doc')
    env = dict(os.environ)
    # The repository's ansible.cfg (collections_path = ./collections) must decide what is documented.
    for var in ('ANSIBLE_CONFIG', 'ANSIBLE_COLLECTIONS_PATH', 'ANSIBLE_COLLECTIONS_PATHS'):
        env.pop(var, None)
    env['ANSIBLE_HOME'] = tempfile.mkdtemp(prefix='lifeboat-unit-ansible-home-')
    env['NO_COLOR'] = '1'
    try:
        proc = subprocess.run([ansible_doc, '--json', '%s.%s' % (COLLECTION, name)], cwd=str(REPO_ROOT),
                              env=env, capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(env['ANSIBLE_HOME'], ignore_errors=True)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        data = None
    return proc.returncode, data, proc.stderr


def rendered(name):
    rc, data, stderr = _ansible_doc(name)
    assert rc == 0, 'ansible-doc failed for %s.%s: %s' % (COLLECTION, name, stderr)
    key = '%s.%s' % (COLLECTION, name)
    assert data and key in data, 'ansible-doc gave no documentation for %s: %s' % (key, stderr)
    return data[key]


def spec_of(name):
    module = importlib.import_module('ansible_collections.lifeboat.db.plugins.modules.%s' % name)
    return module.argument_spec()


def _typed(value):
    # True == 1 in Python; a default of the wrong type must not compare equal.
    return (type(value).__name__, value)


@pytest.mark.parametrize('name', MODULES)
def test_ansible_doc_renders_docs_examples_return_and_attributes(name):
    entry = rendered(name)
    doc = entry['doc']
    assert doc['module'] == name
    # The documentation comes from this repository's collection, not some installed copy.
    assert os.path.realpath(doc['filename']) == os.path.realpath(str(MODULES_DIR / ('%s.py' % name)))
    assert doc.get('short_description')
    assert doc.get('options')
    assert isinstance(entry['examples'], str) and entry['examples'].strip()
    assert isinstance(entry['return'], dict) and entry['return']
    attributes = doc.get('attributes') or {}
    for attribute in ('check_mode', 'diff_mode'):
        assert attribute in attributes, '%s documents no %s attribute' % (name, attribute)
        assert attributes[attribute].get('support') in ('full', 'partial', 'none', 'N/A')


def spec_problems(documented, spec):
    """Differences between documented options (ansible-doc) and an argument_spec, as validate-modules sees them."""
    problems = []
    for option in sorted(set(documented) - set(spec)):
        problems.append('%s is documented but not in argument_spec' % option)
    for option in sorted(set(spec) - set(documented)):
        problems.append('%s is in argument_spec but not documented' % option)
    for option in sorted(set(spec) & set(documented)):
        arg, doc = spec[option], documented[option]
        pairs = dict(
            type=(doc.get('type', 'str'), arg.get('type', 'str')),
            required=(bool(doc.get('required', False)), bool(arg.get('required', False))),
            default=(_typed(doc.get('default')), _typed(arg.get('default'))),
            choices=(sorted(doc.get('choices') or []), sorted(arg.get('choices') or [])),
            aliases=(sorted(doc.get('aliases') or []), sorted(arg.get('aliases') or [])),
            elements=(doc.get('elements'), arg.get('elements')),
        )
        for field, (in_doc, in_spec) in sorted(pairs.items()):
            if in_doc != in_spec:
                problems.append('%s.%s: documented %r, argument_spec %r' % (option, field, in_doc, in_spec))
        if arg.get('required') and arg.get('default') is not None:
            problems.append('%s is required and has a default' % option)
        if arg.get('no_log') and ('default' in doc or arg.get('default') is not None):
            problems.append('%s is no_log but has a documented default' % option)
        if NO_LOG_REGEX.search(option) and 'no_log' not in arg:
            problems.append('%s looks secret but does not set no_log explicitly' % option)
    return problems


@pytest.mark.parametrize('name', MODULES)
def test_documented_options_match_argument_spec(name):
    problems = spec_problems(rendered(name)['doc']['options'], spec_of(name))
    assert not problems, '\n'.join(problems)


def test_spec_comparison_detects_each_kind_of_drift():
    # The comparison must not be vacuous: every kind of drift from the real dump spec is reported.
    documented = rendered('dump')['doc']['options']
    base = spec_of('dump')
    assert spec_problems(documented, base) == []
    drifts = dict(
        type=lambda s: s['compress'].update(type='str'),
        required=lambda s: s['repository'].pop('required'),
        default=lambda s: s['port'].update(default='5432'),
        bool_vs_int_default=lambda s: s['compress'].update(default=True),
        choices=lambda s: s['ssl_mode']['choices'].remove('allow'),
        aliases=lambda s: s['login_host'].update(aliases=['hostname']),
        elements=lambda s: s['keep_last'].update(elements='int'),
        undocumented=lambda s: s.update(extra=dict(type='str')),
        no_log_missing=lambda s: s['ssl_key'].pop('no_log'),
        no_log_with_default=lambda s: s['login_password'].update(default='secret'),
    )
    for what, drift in drifts.items():
        spec = copy.deepcopy(base)
        drift(spec)
        assert spec_problems(documented, spec), 'drift %s went unnoticed' % what


@pytest.mark.parametrize('name', MODULES)
def test_login_password_is_no_log_in_every_module(name):
    spec = spec_of(name)
    if name in ('evidence', 'report', 'async_watch'):
        # The modules that connect to no database (evidence, report: action plugins on the controller).
        assert not [option for option in spec if option.startswith('login_')]
        return
    assert spec['login_password'].get('no_log') is True


def _task_keywords():
    from ansible.playbook.block import Block
    from ansible.playbook.task import Task
    return set(Task.fattributes) | set(Block.fattributes) | {'local_action'}


def _actions(tasks, keywords):
    """The module name each task calls, walking into block/rescue/always."""
    for task in tasks:
        assert isinstance(task, dict), 'a task in EXAMPLES is not a mapping: %r' % (task,)
        if any(section in task for section in ('block', 'rescue', 'always')):
            for section in ('block', 'rescue', 'always'):
                for action in _actions(task.get(section) or [], keywords):
                    yield action
            continue
        if 'action' in task or 'local_action' in task:
            value = task.get('action', task.get('local_action'))
            yield (value['module'] if isinstance(value, dict) else value.split()[0])
            continue
        names = [key for key in task if key not in keywords and not key.startswith('with_')]
        assert len(names) == 1, 'task %r does not call exactly one module: %s' % (task.get('name'), names)
        yield names[0]


@pytest.mark.parametrize('name', MODULES)
def test_examples_are_yaml_tasks_with_fqcn(name):
    tasks = yaml.safe_load(rendered(name)['examples'])
    assert isinstance(tasks, list) and tasks
    actions = list(_actions(tasks, _task_keywords()))
    assert '%s.%s' % (COLLECTION, name) in actions, 'EXAMPLES of %s never call the module itself' % name
    for action in actions:
        if action.startswith(COLLECTION + '.'):
            assert action[len(COLLECTION) + 1:] in MODULES, 'EXAMPLES call unknown module %s' % action
        else:
            assert action.startswith('ansible.builtin.'), 'EXAMPLES of %s use %s; use an FQCN' % (name, action)


def test_fqcn_check_catches_short_names():
    # The walker above must flag a short module name, or the FQCN test proves nothing.
    tasks = yaml.safe_load('- name: x\n  debug:\n    msg: hi\n  register: r\n')
    assert list(_actions(tasks, _task_keywords())) == ['debug']
