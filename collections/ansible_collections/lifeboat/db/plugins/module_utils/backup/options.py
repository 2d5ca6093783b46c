# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What to dump and how: format, compression, parallelism and table selection, validated once and
turned into pg_dump arguments, the archive's file name and the set of tables it will hold."""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError
from ansible_collections.lifeboat.db.plugins.module_utils.pg.names import fold, lex

FORMATS = ('custom', 'directory', 'plain')
METHODS = ('gzip', 'lz4', 'zstd', 'none')
# Highest level each method accepts (pg_dump's own limits).
MAX_LEVEL = dict(gzip=9, lz4=12, zstd=22, none=0)
PLAIN_SUFFIX = dict(gzip='.sql.gz', lz4='.sql.lz4', zstd='.sql.zst', none='.sql')
# pg_dump learned --compress=METHOD:LEVEL (lz4, zstd) in PostgreSQL 16.
METHODS_SINCE = dict(lz4=16, zstd=16)


class DumpOptions(object):
    def __init__(self, format='custom', compress=6, compress_method='gzip', jobs=1, tables=None,
                 exclude_tables=None, schemas=None, exclude_schemas=None):
        if format not in FORMATS:
            raise LifeboatError('format must be one of %s, got %r' % (', '.join(FORMATS), format))
        if compress_method not in METHODS:
            raise LifeboatError('compress_method must be one of %s, got %r' % (', '.join(METHODS), compress_method))
        if compress_method == 'none':
            compress = 0
        if not 0 <= compress <= MAX_LEVEL[compress_method]:
            raise LifeboatError('compress level %d is out of range for %s (0 to %d)'
                                % (compress, compress_method, MAX_LEVEL[compress_method]))
        if jobs < 1:
            raise LifeboatError('jobs must be at least 1, got %d' % jobs)
        if jobs > 1 and format != 'directory':
            raise LifeboatError('jobs > 1 needs format: directory (pg_dump dumps in parallel only into a directory)')
        self.format = format
        self.compress = compress
        self.compress_method = compress_method if compress else 'none'
        self.jobs = jobs
        self.tables = list(tables or [])
        self.exclude_tables = list(exclude_tables or [])
        self.schemas = list(schemas or [])
        self.exclude_schemas = list(exclude_schemas or [])
        for pattern in self.tables + self.exclude_tables + self.schemas + self.exclude_schemas:
            lex(pattern)  # an unclosed double quote is refused before pg_dump runs

    @property
    def min_pg_dump_major(self):
        return METHODS_SINCE.get(self.compress_method, 0)

    def archive_name(self, database):
        if self.format == 'custom':
            return '%s.dump' % database
        if self.format == 'directory':
            return '%s.dir' % database
        return database + PLAIN_SUFFIX[self.compress_method]

    @property
    def streamed(self):
        """Plain output is written through us (hashed while written). Custom archives are written by
        pg_dump itself so they keep the data offsets that parallel and selective restores need."""
        return self.format == 'plain'

    def compress_argument(self):
        if self.compress_method in ('gzip', 'none'):
            return '--compress=%d' % self.compress
        return '--compress=%s:%d' % (self.compress_method, self.compress)

    def pg_dump_argv(self, pg_dump_path, snapshot, archive_path):
        argv = [pg_dump_path, '--format=%s' % self.format, self.compress_argument(), '--no-password',
                '--snapshot=%s' % snapshot]
        if self.format == 'directory':
            argv.append('--jobs=%d' % self.jobs)
        if self.tables or self.schemas:
            # An include pattern that matches nothing is an error, not an empty backup.
            argv.append('--strict-names')
        argv.extend('--table=%s' % t for t in self.tables)
        argv.extend('--exclude-table=%s' % t for t in self.exclude_tables)
        argv.extend('--schema=%s' % s for s in self.schemas)
        argv.extend('--exclude-schema=%s' % s for s in self.exclude_schemas)
        if archive_path:
            argv.append('--file=%s' % archive_path)
        return argv

    def selection(self):
        return dict(tables=self.tables, exclude_tables=self.exclude_tables, schemas=self.schemas,
                    exclude_schemas=self.exclude_schemas)

    def selects(self, schema, table):
        """Whether pg_dump's include/exclude patterns take this table (psql pattern rules)."""
        if self.schemas and not any(_match(_joined(lex(p)), schema) for p in self.schemas):
            return False
        if any(_match(_joined(lex(p)), schema) for p in self.exclude_schemas):
            return False
        if self.tables and not any(_match_table(p, schema, table) for p in self.tables):
            return False
        return not any(_match_table(p, schema, table) for p in self.exclude_tables)


def _pattern_regex(runs):
    """psql pattern (one part of names.lex) -> regex: * and ? are wildcards, unquoted letters fold
    to lower case, double quotes keep case and make wildcards literal."""
    out = []
    for run, quoted in runs:
        if quoted:
            out.append(re.escape(run))
            continue
        for char in fold(run):
            out.append('.*' if char == '*' else '.' if char == '?' else re.escape(char))
    return re.compile('^%s$' % ''.join(out), re.S)


def _match(runs, name):
    return bool(_pattern_regex(runs).match(name))


def _joined(parts):
    """lex() parts as one pattern whose dots are literal."""
    runs = list(parts[0])
    for part in parts[1:]:
        runs += [('.', True)] + part
    return runs


def _match_table(pattern, schema, table):
    # Split at the first dot outside double quotes; a dot after it is part of the table's pattern.
    parts = lex(pattern)
    if len(parts) > 1 and not _match(parts[0], schema):
        return False
    return _match(_joined(parts[1:] or parts), table)
