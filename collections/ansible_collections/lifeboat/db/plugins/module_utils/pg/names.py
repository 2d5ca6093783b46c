# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Table names as PostgreSQL reads them: the one parser of `schema.table` every module uses, and
the forms a name is written back in (display key, quoted SQL, the shortest spelling).

Reading (as `to_regclass` does): parts are split at dots outside double quotes; an unquoted part
folds A-Z to lower case (other letters stay: PostgreSQL folds only ASCII in a multibyte encoding)
and may not hold spaces or quotes; a quoted part keeps everything, `""` inside being one `"`.
A name without a schema comes back with schema None: `split_name` reads it as `public` (what
integrity, maintenance, partition and fault document), `quoted_key(None, t)` leaves it to the
server's search_path (delta), and restore mode=tables, which names tables of an archive, wants a
schema.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

# PostgreSQL's names are at most NAMEDATALEN - 1 bytes; it cuts longer ones silently.
MAX_NAME_BYTES = 63

# A part that reads back as itself unquoted (quote_ident's rule, keywords aside: they are never
# ambiguous after a schema).
PLAIN = re.compile(r'^[a-z_][a-z0-9_$]*$')
HOW = 'write it as schema.table, double-quoting a part with capitals to keep, spaces, dots or quotes ' \
      '(e.g. public."Odd Name")'


def fold(text):
    """Unquoted text as PostgreSQL folds it: A-Z to lower case, every other character kept."""
    return ''.join(chr(ord(c) + 32) if 'A' <= c <= 'Z' else c for c in text)


def lex(text):
    """The one lexer of dotted names (and psql patterns, backup/options.py): `text` split at dots
    outside double quotes into parts, each a list of (run, quoted) - `""` inside quotes being one
    `"`. An unclosed quote raises."""
    parts, runs, i, n = [], [], 0, len(text)
    while i < n:
        if text[i] == '"':
            chars, i = [], i + 1
            while True:
                close = text.find('"', i)
                if close < 0:
                    raise LifeboatError('%r is not a name: a double quote is not closed; close it (a double quote '
                                        'inside a quoted name is written twice, "")' % (text,))
                chars.append(text[i:close])
                i = close + 1
                if text[i:i + 1] != '"':
                    break
                chars.append('"')
                i += 1
            runs.append((''.join(chars), True))
        elif text[i] == '.':
            parts.append(runs)
            runs, i = [], i + 1
        else:
            end = i
            while end < n and text[end] not in '".':
                end += 1
            runs.append((text[i:end], False))
            i = end
    parts.append(runs)
    return parts


def _part(runs):
    """The name one part of lex() stands for, or (None, why not)."""
    # Spaces around a part are allowed (to_regclass skips them), not inside an unquoted one.
    runs = [(run.strip(), False) if not quoted else (run, True) for run, quoted in runs]
    runs = [(run, quoted) for run, quoted in runs if quoted or run]
    if not runs:
        return None, 'a part is empty'
    if len(runs) > 1:
        return None, 'text right before or after a quoted part'
    run, quoted = runs[0]
    if quoted:
        return (run, None) if run else (None, 'a quoted part is empty')
    if any(c.isspace() for c in run):
        return None, 'a space inside an unquoted part'
    return fold(run), None


def _read_parts(text, counts):
    """The names of `text`'s dotted parts, or (None, why not) when it has no part count of
    `counts` or a part is not a name; each name is checked against the server's length limit."""
    parts = lex(text or '')
    names = [_part(runs) for runs in parts]
    problem = '%d parts' % len(parts) if len(parts) not in counts else next((why for _, why in names if why), None)
    if problem:
        return None, problem
    for name, _ in names:
        check_name('%r: the name' % (text,), name)
    return [name for name, _ in names], None


def parse_name(text):
    """(schema or None, table) of `schema.table` or `table`, as PostgreSQL reads the name."""
    names, problem = _read_parts(text, (1, 2))
    if problem:
        raise LifeboatError('%r is not a table name (%s); %s' % (text, problem, HOW))
    return tuple([None] * (2 - len(names)) + names)


def parse_column(text):
    """(schema or None, table, column) of `table.column` or `schema.table.column`, each part read
    as parse_name reads it (unquoted folds to lower case, quoted is kept)."""
    names, problem = _read_parts(text, (2, 3))
    if problem:
        raise LifeboatError('%r is not a column (%s); write table.column or schema.table.column, double-quoting a '
                            'part with capitals, spaces, dots or quotes (e.g. d_facility.id)' % (text, problem))
    return tuple([None] * (3 - len(names)) + names)


def split_name(text):
    """(schema, table), a bare name being public's (never another schema of the search path)."""
    schema, table = parse_name(text)
    return (schema or 'public', table)


def check_name(what, name):
    """`name` as PostgreSQL keeps it: a name over 63 bytes is cut silently by the server (in a
    statement and in a connection alike), so it would denote another, maybe existing, object."""
    if name is not None and len(name.encode('utf-8')) > MAX_NAME_BYTES:
        raise LifeboatError('%s %r is %d bytes, longer than the %d bytes of a PostgreSQL name, which PostgreSQL would '
                            'cut to another name; give the name as it is on the server'
                            % (what, name, len(name.encode('utf-8')), MAX_NAME_BYTES))
    return name


def table_key(schema, table):
    """'schema.table' unquoted: how results and manifests show a table."""
    return '%s.%s' % (schema, table)


def _quote(part):
    return '"%s"' % part.replace('"', '""')


def quoted_key(schema, table):
    """"schema"."table" as SQL quotes it (a double quote doubled): one table's name, whatever dots
    its parts hold; without a schema, "table" (the server's search_path finds it)."""
    return '.'.join(_quote(part) for part in (schema, table) if part is not None)


def written(schema, table):
    """The shortest spelling parse_name reads back as this table: parts quoted only where needed."""
    return '.'.join(part if PLAIN.match(part) else _quote(part) for part in (schema, table))


def row_count_keys(pairs):
    """{(schema, table): the key its row count is recorded under}: 'schema.table', except for
    tables that would share one (schema a, table b.c and schema a.b, table c are both 'a.b.c'):
    those are keyed "schema"."table", so no count is ever recorded for, or compared with, the
    wrong table. The same tables always get the same keys, so a dump and the check of its restore
    agree."""
    pairs = list(pairs)
    plain = {}
    for pair in pairs:
        plain.setdefault(table_key(*pair), []).append(pair)
    keys = dict((pair, table_key(*pair) if len(plain[table_key(*pair)]) == 1 else quoted_key(*pair))
                for pair in pairs)
    if len(set(keys.values())) != len(keys):
        shared = sorted(key for key in set(keys.values()) if list(keys.values()).count(key) > 1)
        raise LifeboatError('tables %s cannot be told apart by name; rename one of them' % ', '.join(shared))
    return keys


def recorded_key(text, keys):
    """The key among `keys` (row-count keys, as row_count_keys makes them) that `text` names: the
    key itself, or any spelling parse_name reads as that table (Public.Orders for public.orders).
    A name no key matches comes back as its plain key, for the caller to report as unknown."""
    if text in keys:
        return text
    pair = split_name(text)
    for key in (table_key(*pair), quoted_key(*pair)):
        if key in keys:
            return key
    return table_key(*pair)
