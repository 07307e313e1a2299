import orjson
import pytest

from dclm.dedup.bff import BffConfig, run_bff


@pytest.fixture
def bff(tmp_path):
    """Run bff over `files` ({name: [pages]}); returns (outputs {name: [pages] or None}, BffResult)."""
    def run(files, out="out", inp="in", **kw):
        inp = tmp_path / inp
        for name, pages in files.items():
            p = inp / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(b"".join(orjson.dumps(x) + b"\n" if isinstance(x, dict) else x for x in pages))
        opts = dict(expected_ngram_count=10_000, fp_rate=1e-6, min_ngram_size=2, max_ngram_size=3,
                    workers=1, progress=False)
        opts.update(kw)
        res = run_bff(BffConfig(inputs=[str(inp)], output_directory=str(tmp_path / out), **opts))
        outs = {}
        for name in files:
            p = tmp_path / out / name
            outs[name] = [orjson.loads(line) for line in p.read_bytes().splitlines()] if p.exists() else None
        return outs, res
    return run

