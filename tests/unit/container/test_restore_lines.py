"""pg_restore's stderr from a container, split into lines for the restore's progress and message.

The engine hands stderr over in blocks cut anywhere; container/exec.LineTail must see whole
lines (a table name cut in two would never match the progress pattern) and keep the last ones,
where pg_restore's error is, even when --verbose has written far more than the exec keeps."""
from ansible_collections.lifeboat.db.plugins.module_utils.container.exec import TAIL_LINES, LineTail
from ansible_collections.lifeboat.db.plugins.module_utils.restore.database import _table_follower
from ansible_collections.lifeboat.db.plugins.module_utils.pg.tools import last_error_line


class FakeProgress:
    def __init__(self):
        self.state, self.tables = {}, []

    def update(self, current_table=None, **_):
        self.tables.append(current_table)


def test_lines_whole_whatever_the_blocks():
    text = (b'pg_restore: processing data for table "public.item"\n'
            b'pg_restore: processing data for table "public.tag"\n'
            b'pg_restore: error: could not execute query: ERROR:  role "ghost" does not exist')
    for size in (1, 3, 7, len(text)):
        progress = FakeProgress()
        tail = LineTail(_table_follower(progress))
        for start in range(0, len(text), size):
            tail.feed(text[start:start + size])
        tail.close()
        assert progress.tables == ["public.item", "public.tag"]
        assert progress.state["tables_done"] == 2
        assert last_error_line("\n".join(tail.lines), "none").endswith('role "ghost" does not exist')


def test_only_the_last_lines_kept():
    tail = LineTail(None)
    tail.feed(b"".join(b"pg_restore: creating TABLE t%d\n" % n for n in range(5000)))
    tail.feed(b"pg_restore: error: out of disk\n")
    tail.close()
    assert len(tail.lines) == TAIL_LINES and tail.lines[-1] == "pg_restore: error: out of disk"
