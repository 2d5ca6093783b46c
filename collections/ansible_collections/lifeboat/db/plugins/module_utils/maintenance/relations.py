# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a maintenance task names, looked up before anything runs: each must exist and be of the
kind the option needs; and a maintenance statement run and timed."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg, sql
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import split_name

KIND_NAMES = {'r': 'table', 'p': 'partitioned table', 'm': 'materialized view', 'v': 'view', 'f': 'foreign table',
              'S': 'sequence', 'i': 'index', 'I': 'partitioned index', 'c': 'composite type', 't': 'TOAST table'}
TABLE_KINDS = ('r', 'p')
ANALYZABLE_KINDS = ('r', 'p', 'm')

RELATION = """SELECT c.oid, n.nspname, c.relname, c.relkind, c.relispopulated
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relname = %s"""


class Relation(object):
    def __init__(self, oid, schema, name, kind, populated):
        self.oid, self.schema, self.name, self.kind, self.populated = oid, schema, name, kind, populated

    @property
    def label(self):
        return '%s.%s' % (self.schema, self.name)

    @property
    def ident(self):
        return sql.Identifier(self.schema, self.name)


def unique(names):
    seen = []
    for name in names or []:
        if name not in seen:
            seen.append(name)
    return seen


def resolve(conn, names, kinds, option, dbname):
    """The relations `names` denote; all of them must exist and be of `kinds`, or nothing is done."""
    found, problems = [], []
    for name in unique(names):
        schema, relation = split_name(name)
        row = conn.execute(RELATION, (schema, relation)).fetchone()
        if row is None:
            problems.append('%s.%s does not exist' % (schema, relation))
        elif row[3] not in kinds:
            problems.append('%s.%s is a %s' % (schema, relation, KIND_NAMES.get(row[3], 'relation')))
        else:
            found.append(Relation(*row))
    if problems:
        wanted = ' or '.join(KIND_NAMES[kind] for kind in kinds)
        raise LifeboatError('%s names what is not a %s in database %r: %s; name each as schema.name (a bare name '
                            'means public); nothing was done' % (option, wanted, dbname, ', '.join(problems)))
    return found


def timed(conn, statement, what):
    """Seconds `statement` took; a database error names what was being done."""
    started = time.monotonic()
    try:
        conn.execute(statement)
    except psycopg.Error as exc:
        raise LifeboatError('%s failed: %s' % (what, first_line(exc)))
    return round(time.monotonic() - started, 3)
