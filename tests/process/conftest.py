import textwrap

import pytest

from dclm.io import write_pages

USER_MAPPERS = textwrap.dedent('''
    import time

    from dclm.mappers import factory_function, register


    def drop_every_third(page):
        return [] if page["id"] % 3 == 0 else [page]


    def split_some(page):
        if page["id"] % 5 == 1:
            return [dict(page, part=0), dict(page, part=1)]
        return [page]


    def flaky(page):
        if page["id"] % 7 == 2:
            raise ValueError(f"cannot handle page {page['id']}")
        page["n_chars"] = len(page["text"])
        return [page]


    def slow(page, delay=0.0):
        time.sleep(delay)
        return [page]


    @factory_function
    def shout(suffix="!"):
        def fn(page):
            page["text"] = page["text"].upper() + suffix
            return [page]
        return fn


    register("registered_slow", slow)
''')


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory holding `usermappers.py` (reachable as a dotted func path) and input shards."""
    (tmp_path / "usermappers.py").write_text(USER_MAPPERS)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def make_shards():
    """Write `n_shards` gzip shards of `n_pages` pages each under `root/partK/`."""
    return _make_shards


def _make_shards(root, n_shards, n_pages, suffix=".jsonl.gz"):
    for s in range(n_shards):
        pages = [{"id": s * 1000 + i, "text": f"page {i} of shard {s}. " * (1 + i % 4), "url": f"http://x{s}.com/{i}"}
                 for i in range(n_pages)]
        write_pages(str(root / f"part{s // 10}" / f"shard_{s:03d}{suffix}"), pages)
