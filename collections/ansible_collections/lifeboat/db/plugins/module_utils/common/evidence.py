# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Evidence files on the controller (the action plugin lifeboat.db.evidence): folders 0700, files
0600, each file whole (written to a new name, synced, renamed), never through a link below the
evidence folder and never outside it, whatever a name (made of run ids and host names) says."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.storage.manifest import write_text_atomic


def evidence_parts(name):
    """The folder names and file name of `name`, relative to the evidence folder, checked."""
    if not isinstance(name, str) or not name or '\0' in name or name.startswith('/'):
        raise LifeboatError('evidence file name %r must be a non-empty relative path' % (name,))
    if '{{' in name or '}}' in name:
        # Ansible templates the values of a task's dict, never its keys: build such a dict in one expression.
        raise LifeboatError('evidence file name %r was not templated (ansible leaves the keys of a dict as written); '
                            'build files in one expression: "{{ {run_id ~ \'/summary.json\': ...} }}"' % name)
    parts = name.split('/')
    if any(part in ('', '.', '..') for part in parts):
        raise LifeboatError('evidence file name %r has an empty, "." or ".." part; name files inside the '
                            'evidence folder only' % name)
    return parts


def plan_evidence(folder, files):
    """[(path, folders below `folder` it needs, text)] for every file, all names checked first."""
    planned = []
    for name, content in files.items():
        parts = evidence_parts(name)
        folders = [os.path.join(folder, *parts[:i]) for i in range(1, len(parts))]
        planned.append((os.path.join(folder, *parts), folders, content))
    return planned


def _make_folder(path, top):
    """Make `path` (0700) unless it is a folder already; a link or a file there is refused."""
    try:
        facts = os.lstat(path)
    except FileNotFoundError:
        try:
            if top:
                os.makedirs(path, 0o700)
            else:
                os.mkdir(path, 0o700)
        except FileExistsError:
            facts = os.lstat(path)  # made meanwhile by another host's task of the same run
        except OSError as exc:
            raise LifeboatError('cannot make the evidence folder %s: %s' % (path, exc.strerror or exc))
        else:
            return
    # The top folder is the operator's own setting: a link they made there is theirs to follow.
    if stat.S_ISDIR(facts.st_mode) or (top and os.path.isdir(path)):
        return
    raise LifeboatError('%s is %s, not a folder; lifeboat writes evidence only into folders, never through '
                        'a link: move it away' % (path, 'a link' if stat.S_ISLNK(facts.st_mode) else 'a file'))


def write_evidence(folder, files, to_text, check_mode=False):
    """Write `files` ({relative name: content}) into `folder`; returns the paths written.
    `to_text` turns content that is not a string into text (the action plugin's to_nice_json)."""
    planned = plan_evidence(folder, files)
    if check_mode:
        return [path for path, _, _ in planned]
    _make_folder(folder, True)
    written = []
    for path, folders, content in planned:
        for below in folders:
            _make_folder(below, False)
        text = content if isinstance(content, str) else to_text(content)
        if not text.endswith('\n'):
            text += '\n'
        try:
            write_text_atomic(path, text)
        except OSError as exc:
            raise LifeboatError('cannot write the evidence file %s: %s (%d file(s) written before it are whole)'
                                % (path, exc.strerror or exc, len(written)))
        written.append(path)
    return written
