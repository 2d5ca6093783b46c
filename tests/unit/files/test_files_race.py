# -*- coding: utf-8 -*-
"""files backup: an entry swapped between the walk listing it and the archive reading it (for a
link to a secret, for another file, a directory for a link) is not read through: it is reported
as not archived. The swap is made deterministic by doing it right after the walk yields the entry."""
import io
import os
import tarfile

from ansible_collections.lifeboat.db.plugins.module_utils.files import archive as files


def test_entries_swapped_after_listing_are_not_followed(tmp_path, monkeypatch):
    secret = tmp_path / 'secret'
    secret.mkdir()
    (secret / 'shadow').write_text('root:hash\n')
    source = tmp_path / 'uploads'
    (source / 'sub').mkdir(parents=True)
    (source / 'sub' / 'in-sub.txt').write_text('sub\n')
    (source / 'a.txt').write_text('a\n')
    (source / 'b.txt').write_text('b\n')
    (source / 'c.txt').write_text('c\n')
    (source / 'other.txt').write_text('other\n')

    swaps = {
        'a.txt': lambda path: (os.unlink(path), os.symlink(secret / 'shadow', path)),
        'b.txt': lambda path: os.replace(source / 'other.txt', path),   # another inode at the same name
        'sub': lambda path: (os.rename(path, tmp_path / 'sub-moved'), os.symlink(secret, path)),
    }
    walk = files.walk_tree

    def racing_walk(top):
        for relative, name, dir_fd, facts in walk(top):
            if relative in swaps:
                swaps.pop(relative)(os.path.join(top, relative))
            yield relative, name, dir_fd, facts

    monkeypatch.setattr(files, 'walk_tree', racing_walk)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode='w:gz') as tar:
        contents, skipped = files.archive_tree(str(source), tar)
    assert not swaps
    # other.txt was listed, then moved onto b.txt: gone when read, reported too.
    assert sorted(skipped) == ['a.txt', 'b.txt', 'other.txt', 'sub']
    assert [c['path'] for c in contents] == ['c.txt']
    buffer.seek(0)
    with tarfile.open(fileobj=buffer, mode='r:gz') as tar:
        names = tar.getnames()
        assert sorted(names) == ['.', 'c.txt']
        assert all(m.isreg() or m.isdir() for m in tar.getmembers())
