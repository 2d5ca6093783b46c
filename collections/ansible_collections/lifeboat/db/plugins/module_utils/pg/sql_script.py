# -*- coding: utf-8 -*-
# Copyright: lifeboat developers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Plain SQL scripts (pg_dump --schema-only output, seed data, migrations) split into statements
and run one by one through psycopg, without psql.

Splitting follows PostgreSQL's lexical rules the way psql applies them (quotes, dollar quotes,
nested block comments, BEGIN ATOMIC bodies, COPY ... FROM STDIN data), so that an error can name
the file and line of the failing statement, and so that statements PostgreSQL refuses inside a
transaction block are known before anything runs.
"""
from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.lifeboat.db.plugins.module_utils.pg.connection import first_line, psycopg
from ansible_collections.lifeboat.db.plugins.module_utils.common.errors import LifeboatError

# Identifier characters as PostgreSQL's lexer sees them: any non-ASCII character counts as a letter.
# Digits and '$' may continue a word; a word may start with a digit too, so that numbers are
# consumed whole and a '$' right after one is never mistaken for the start of a dollar quote.
_WORD = re.compile(u'[A-Za-z0-9_\u0080-\U0010ffff][A-Za-z0-9_$\u0080-\U0010ffff]*')
# $tag$ where the tag is empty or an identifier not starting with a digit ($1 is a parameter).
_DOLLAR_TAG = re.compile(u'\\$(?:[A-Za-z_\u0080-\U0010ffff][A-Za-z0-9_\u0080-\U0010ffff]*)?\\$')
# Characters that need no attention inside a statement (whitespace, most operators, commas...).
_PLAIN = re.compile(u'[^-;\'"$()/A-Za-z0-9_\u0080-\U0010ffff]+')
# Quoted strings and identifiers; a doubled quote is an escaped quote. In E'...' a backslash
# escapes the next character as well.
_STRING = re.compile(r"'[^']*(?:''[^']*)*'")
_E_STRING = re.compile(r"'[^'\\]*(?:(?:''|\\.)[^'\\]*)*'", re.S)
_IDENTIFIER = re.compile(r'"[^"]*(?:""[^"]*)*"')
_BLOCK_COMMENT_MARK = re.compile(r'/\*|\*/')
# Whitespace and comments between statements.
_BLANK = re.compile(r'\s+|--[^\n]*')
# The line ending COPY ... FROM STDIN data: exactly \. (trailing whitespace or CR allowed).
_COPY_END = re.compile(r'^\\\.[^\S\n]*$', re.M)

# Classification works on the statement without comments, whitespace collapsed, upper-cased.
_COPY_FROM_STDIN = re.compile(r'^COPY\b.*\bFROM STDIN\b')
_ROUTINE = re.compile(r'^CREATE (?:OR REPLACE )?(?:FUNCTION|PROCEDURE)\b')
_CONTROL = (
    ('begin', re.compile(r'^(?:BEGIN(?: WORK| TRANSACTION)?(?: (?:ISOLATION|READ|NOT|DEFERRABLE)\b.*)?'
                         r'|START TRANSACTION\b.*)$')),
    ('commit', re.compile(r'^(?:COMMIT|END)(?: WORK| TRANSACTION)?(?: AND (?:NO )?CHAIN)?$')),
    ('rollback', re.compile(r'^(?:ROLLBACK|ABORT)(?: WORK| TRANSACTION)?(?: AND (?:NO )?CHAIN)?$')),
)
# Statements PostgreSQL refuses inside a transaction block: Flyway's list plus the PG 12+ ones.
# (ALTER TYPE ... ADD VALUE is allowed in a transaction since PG 12, so it is not here.)
_NON_TRANSACTIONAL = re.compile(r'''^(?:
      (?:CREATE|DROP)\ (?:DATABASE|TABLESPACE|SUBSCRIPTION)\b
    | ALTER\ SYSTEM\b
    | (?:CREATE|DROP)(?:\ UNIQUE)?\ INDEX\ CONCURRENTLY\b
    | REINDEX\ .*\bCONCURRENTLY\b
    | REINDEX(?:\ ?\(.*\))?(?:\ VERBOSE)?\ (?:SCHEMA|DATABASE|SYSTEM)\b
    | VACUUM\b
    | DISCARD\ ALL\b
    | ALTER\ TABLE\ .*\ DETACH\ PARTITION\ .*\bCONCURRENTLY\b
    | CLUSTER(?:\ ?\(.*\))?(?:\ VERBOSE)?$
)''', re.X)

# psql writes these around pg_dump 17.6+/18 output; they only guard psql itself, so skipping is safe.
_SKIPPED_META_COMMANDS = ('\\restrict', '\\unrestrict')


class Statement(object):
    """One statement of a script: its SQL, where it starts, and what it needs to run."""

    def __init__(self, text, line, copy_data=None, transactional=True, control=None):
        self.text = text
        self.line = line
        self.copy_data = copy_data
        self.transactional = transactional
        self.control = control

    def summary(self, limit=160):
        """The statement on one line, for messages."""
        flat = ' '.join(self.text.split())
        return flat[:limit] + '...' if len(flat) > limit else flat

    def __repr__(self):
        return 'Statement(line=%d, %r)' % (self.line, self.summary(60))


def parse(text, source):
    """Split a script into [Statement]; `source` names it in error messages (a file name)."""
    return _Parser(text, source).statements()


def read_script(path):
    """The text of a SQL file: UTF-8, a leading BOM stripped, line ends normalised to LF."""
    try:
        with open(path, 'rb') as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise LifeboatError('cannot read SQL script %s: %s; check the path and that it is a readable file'
                            % (path, exc.strerror or exc))
    try:
        text = data.decode('utf-8-sig')
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b'\n') + 1
        raise LifeboatError('SQL script %s is not valid UTF-8 (line %d, byte %d); convert it to UTF-8, '
                            'e.g. with iconv -f LATIN1 -t UTF-8' % (path, line, exc.start))
    return text.replace('\r\n', '\n').replace('\r', '\n')


def execute(cursor, statement, source):
    """Run one Statement on a psycopg 3 cursor, in whatever transaction state the caller set."""
    try:
        if statement.copy_data is None:
            # No params: psycopg then sends the text as-is, so a '%' in it needs no escaping.
            cursor.execute(statement.text)
        else:
            with cursor.copy(statement.text) as copy:
                copy.write(statement.copy_data)
    except psycopg.Error as exc:
        line = statement.line
        position = getattr(exc.diag, 'statement_position', None)
        if position:
            # 1-based character offset into the text we sent: find the line within the statement.
            line += statement.text[:int(position) - 1].count('\n')
        raise LifeboatError('%s line %d: %s; statement: %s'
                            % (source, line, first_line(exc), statement.summary(120))) from exc


def run_all(conn, statements, source):
    """Run a script's statements in order on one cursor, in whatever transaction state the caller set."""
    with conn.cursor() as cursor:
        for statement in statements:
            execute(cursor, statement, source)


def reset_session(conn, search_path):
    """Undo what a script did to the session (pg_dump output empties search_path with
    set_config(..., false); a script may SET ROLE), so the next script starts as the first did."""
    if conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR:
        conn.rollback()
    conn.execute('RESET ROLE')
    conn.execute("SELECT set_config('search_path', %s, false)", (search_path,))


def _classify(code):
    """(transactional, control, is COPY FROM STDIN) of a statement's comment-free text."""
    normal = ' '.join(code.split()).upper()
    control = None
    for name, pattern in _CONTROL:
        if pattern.match(normal):
            control = name
    return not _NON_TRANSACTIONAL.match(normal), control, bool(_COPY_FROM_STDIN.match(normal))


class _Parser(object):
    """A one-pass scanner over the script text; `pos` only moves forward."""

    def __init__(self, text, source):
        self.text = text
        self.source = source
        self.pos = 0
        # Line numbers are counted incrementally (positions asked for only grow), so that a
        # large data file is not re-counted from the start for every statement.
        self._line_pos = 0
        self._line = 1

    def line_at(self, pos):
        if pos < self._line_pos:
            self._line_pos, self._line = 0, 1
        self._line += self.text.count('\n', self._line_pos, pos)
        self._line_pos = pos
        return self._line

    def error(self, pos, what):
        return LifeboatError('%s line %d: %s' % (self.source, self.line_at(pos), what))

    def statements(self):
        found = []
        while True:
            self.skip_blank()
            if self.pos >= len(self.text):
                return found
            char = self.text[self.pos]
            if char == ';':
                self.pos += 1  # an empty statement (';;')
            elif char == '\\':
                # A backslash where a statement would start is a psql meta-command.
                self.meta_command()
            else:
                found.append(self.statement())

    def skip_blank(self):
        """Skip whitespace and comments before a statement: they are not part of its text."""
        while self.pos < len(self.text):
            match = _BLANK.match(self.text, self.pos)
            if match:
                self.pos = match.end()
            elif self.text.startswith('/*', self.pos):
                self.pos = self.block_comment_end(self.pos)
            else:
                return

    def meta_command(self):
        start = self.pos
        end = self.text.find('\n', start)
        end = len(self.text) if end < 0 else end
        name = self.text[start:end].split()[0]
        if name not in _SKIPPED_META_COMMANDS:
            raise self.error(start, 'psql meta-command %s is not SQL and lifeboat does not run psql; '
                                    'remove the line (or apply the file with psql)' % name)
        self.pos = end

    def statement(self):
        """Scan one statement from its first token through its ';' (or the end of the text)."""
        text = self.text
        start = self.pos
        line = self.line_at(start)
        code = []             # the statement's pieces without comments, for classification
        piece_start = start
        paren_depth = 0
        atomic_depth = 0      # BEGIN ATOMIC ... END nesting (CASE ... END counts inside it)
        leading_words = []    # the first four words, to recognise CREATE [OR REPLACE] FUNCTION
        previous_word = None  # the word just before, with only whitespace/comments in between
        end = len(text)
        pos = start
        while pos < len(text):
            char = text[pos]
            if char == ';' and paren_depth == 0 and atomic_depth == 0:
                end = pos
                break
            plain = _PLAIN.match(text, pos)
            if plain:
                if not plain.group().isspace():
                    previous_word = None
                pos = plain.end()
                continue
            if text.startswith('--', pos) or text.startswith('/*', pos):
                code.append(text[piece_start:pos])
                code.append(' ')
                if char == '-':
                    newline = text.find('\n', pos)
                    pos = len(text) if newline < 0 else newline
                else:
                    pos = self.block_comment_end(pos)
                piece_start = pos
                continue
            word = _WORD.match(text, pos)
            if word:
                pos = word.end()
                upper = word.group().upper()
                if upper == 'E' and text.startswith("'", pos):  # E'...': backslash escapes
                    pos = self.quoted_end(pos, _E_STRING)
                    previous_word = None
                    continue
                if len(leading_words) < 4:
                    leading_words.append(upper)
                # Like psql: only a routine body opens a block, and inside it CASE also ends with END.
                if upper == 'ATOMIC' and previous_word == 'BEGIN' and _ROUTINE.match(' '.join(leading_words)):
                    atomic_depth += 1
                elif atomic_depth and upper == 'CASE':
                    atomic_depth += 1
                elif atomic_depth and upper == 'END':
                    atomic_depth -= 1
                previous_word = upper
                continue
            previous_word = None
            if char == "'":
                pos = self.quoted_end(pos, _STRING)
            elif char == '"':
                pos = self.quoted_end(pos, _IDENTIFIER)
            elif char == '$':
                pos = self.dollar_quoted_end(pos)
            elif char == '(':
                paren_depth += 1
                pos += 1
            elif char == ')':
                paren_depth = max(0, paren_depth - 1)
                pos += 1
            else:
                pos += 1  # ';' inside parentheses or a block, a lone '-' or '/'
        code.append(text[piece_start:end])
        self.pos = end + 1 if end < len(text) else end
        transactional, control, copy = _classify(''.join(code))
        statement = Statement(text[start:end].rstrip(), line, transactional=transactional, control=control)
        if copy:
            statement.copy_data = self.copy_data(start, end)
        return statement

    def copy_data(self, statement_start, end):
        """The data lines after COPY ... FROM STDIN, up to the \\. line; moves past that line."""
        text = self.text
        newline = text.find('\n', end)
        rest = text[end + 1:len(text) if newline < 0 else newline].strip()
        if rest and not rest.startswith('--'):
            # psql would read the data from the next line and run this text after it: surprising.
            raise self.error(end, 'text after COPY ... FROM STDIN; on the same line; '
                                  'put it after the \\. line that ends the data')
        terminator = _COPY_END.search(text, newline + 1) if newline >= 0 else None
        if terminator is None:
            raise self.error(statement_start, 'COPY ... FROM STDIN data has no terminating \\. line; '
                                              'end the data with a line holding only \\.')
        self.pos = terminator.end() + 1  # past the '\n' after '\.' (or the end of the text)
        return text[newline + 1:terminator.start()]

    def quoted_end(self, pos, pattern):
        match = pattern.match(self.text, pos)
        if match:
            return match.end()
        quote = self.text[pos]
        if quote == '"':
            raise self.error(pos, 'unterminated quoted identifier " that starts here; close it with " '
                                  '(write "" for a double quote inside it)')
        raise self.error(pos, "unterminated quoted string ' that starts here; close it with ' "
                              "(write '' for a quote inside it)")

    def dollar_quoted_end(self, pos):
        tag = _DOLLAR_TAG.match(self.text, pos)
        if not tag:
            return pos + 1  # a parameter ($1) or a lone '$'
        close = self.text.find(tag.group(), tag.end())
        if close < 0:
            raise self.error(pos, 'unterminated dollar-quoted string %s that starts here; close it with %s'
                             % (tag.group(), tag.group()))
        return close + len(tag.group())

    def block_comment_end(self, pos):
        """The end of the /* ... */ comment at pos; block comments nest in PostgreSQL."""
        depth = 0
        for mark in _BLOCK_COMMENT_MARK.finditer(self.text, pos):
            depth += 1 if mark.group() == '/*' else -1
            if depth == 0:
                return mark.end()
        raise self.error(pos, 'unterminated block comment /* that starts here; close it with */ '
                              '(block comments nest: every /* needs its own */)')
