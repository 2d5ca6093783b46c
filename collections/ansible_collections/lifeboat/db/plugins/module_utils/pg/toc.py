# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An archive's table of contents: running `pg_restore --list` and reading what it prints.

    ; Dumped by pg_dump version: 17.2        <- header comments: who wrote it, from which database
    ; dbname: shop
    215; 1259 16390 TABLE public orders owner <- one line per entry: id; tableoid oid DESC schema tag owner
    4; 3079 16386 EXTENSION - pgcrypto

The check before every restore keeps the text (backup.toc); restore mode=tables, the preflight
and the sources of an archive lifeboat did not write read it with the functions here.
(pg/stream.py's TocTee feeds a stream to `pg_restore --list` only for its exit status.)
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import run_tool

# The descriptions we look at, longest first so that "TABLE DATA" is not read as "TABLE".
KNOWN_DESCS = sorted(('TABLE', 'TABLE DATA', 'TABLE ATTACH', 'DEFAULT', 'CONSTRAINT', 'FK CONSTRAINT', 'INDEX',
                      'INDEX ATTACH', 'TRIGGER', 'POLICY', 'RULE', 'ROW SECURITY', 'SEQUENCE', 'SEQUENCE OWNED BY',
                      'SEQUENCE SET', 'STATISTICS', 'COMMENT', 'ACL', 'SECURITY LABEL', 'SCHEMA', 'EXTENSION'),
                     key=len, reverse=True)
TOC_LINE = re.compile(r'^(\d+); \d+ \d+ (.*)$')
DUMPED_BY = re.compile(r'^;\s+Dumped by pg_dump version:\s+(\d+(?:\.\d+)?)', re.M)
DBNAME = re.compile(r'^;\s+dbname:\s+(.+)$', re.M)


def read_toc(ctx, pg_restore, archive, what):
    """The text `pg_restore --list` prints for `archive` (a file or a directory archive); a
    failure is a LifeboatError naming `what` with pg_restore's error line. It proves the archive's
    header and table of contents read back."""
    return run_tool(ctx.run_command, [pg_restore, '--list', archive], None, what)


class TocEntry(object):
    """One line of `pg_restore --list`: `215; 1259 16390 TABLE public orders owner`.

    The names are printed unquoted, so the schema is read as the first word and the owner as the
    last: schema and owner names with spaces are not supported (table names with spaces are)."""

    def __init__(self, line, dump_id, desc, schema, tag):
        self.line, self.dump_id, self.desc, self.schema, self.tag = line, dump_id, desc, schema, tag

    @classmethod
    def parse(cls, line):
        match = TOC_LINE.match(line)
        if not match:
            return None
        rest = match.group(2)
        for desc in KNOWN_DESCS:
            if rest.startswith(desc + ' '):
                schema, _, named = rest[len(desc) + 1:].partition(' ')
                tag = named.rsplit(' ', 1)[0] if ' ' in named else named
                return cls(line, int(match.group(1)), desc, None if schema == '-' else schema, tag)
        return None


def parse_toc(text):
    """The entries of `pg_restore --list` output that TocEntry understands."""
    return [entry for entry in (TocEntry.parse(line) for line in text.splitlines()) if entry is not None]


def extensions(text):
    """The extensions the archive creates, sorted."""
    return sorted(set(entry.tag for entry in parse_toc(text) if entry.desc == 'EXTENSION'))


def dumped_by(text):
    """The version of the pg_dump that wrote the archive ('17.2'), or None."""
    match = DUMPED_BY.search(text)
    return match.group(1) if match else None


def dumped_database(text):
    """The name of the database the archive was dumped from, or None."""
    match = DBNAME.search(text)
    return match.group(1).strip() if match else None
