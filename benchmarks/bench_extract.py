"""Benchmark `dclm extract` on generated Common-Crawl-like WARC files and print JSON.

The benchmark writes seeded WARC.gz files with warcio: HTML responses of 5-80 KB (navigation, sidebar,
footer, scripts, tables and 3-30 paragraphs of real English lines from Vim's help files when present),
15% of them gzip content-encoded, 10% non-Latin charsets declared by meta tag, plus request/metadata
records and 8% non-HTML responses, as in real crawls. It then times, single process:
- `fastwarc_read`: fastwarc iterating every record and reading its block (the floor for any extractor);
- `minimal_loop`: fastwarc + utf-8/detected decode + resiliparse main-content extraction, no accounting
  or output (what a bare DCLM-style script does);
- `dclm_extract`: `dclm.extract.run_extract` end to end (HTTP decoding, charset, stats, zstd output),
  for each extractor in --extractors.
Reported: records/s, response records/s, compressed input MB/s, uncompressed HTML MB/s, and the load
average (`os.getloadavg`) before and after, since the machine may be shared.

    .venv/bin/python benchmarks/bench_extract.py --records 3000 --extractors resiliparse
"""

from __future__ import annotations

import argparse
import glob
import gzip
import io
import json
import os
import random
import tempfile
import time

VIM_DOCS = "/usr/share/vim/vim9*/doc/*.txt"


def _lines(rng: random.Random) -> list[str]:
    lines = []
    for path in sorted(glob.glob(VIM_DOCS))[:60]:
        with open(path, encoding="utf-8", errors="replace") as f:
            lines += [ln.strip() for ln in f if len(ln.split()) >= 6]
    if len(lines) < 1000:
        words = [f"w{i}" for i in range(3000)] + "the of and to in is was for on that with as by at".split()
        lines = [" ".join(rng.choice(words) for _ in range(rng.randint(8, 25))) + "." for _ in range(20000)]
    return lines


def _page(rng: random.Random, lines: list[str], i: int) -> str:
    nav = "".join(f'<li><a href="/s{k}">Section {k}</a></li>' for k in range(rng.randint(5, 30)))
    paras = "".join(f"<p>{' '.join(rng.sample(lines, rng.randint(1, 6)))}</p>" for _ in range(rng.randint(3, 30)))
    table = "".join(f"<tr><td>{k}</td><td>{rng.random():.4f}</td></tr>" for k in range(rng.randint(0, 40)))
    script = "<script>var x = {" + ",".join(f"'k{k}': {k}" for k in range(rng.randint(10, 400))) + "};</script>"
    side = "".join(f'<div class="widget"><a href="/tag/{k}">tag {k}</a></div>' for k in range(rng.randint(0, 60)))
    return (f"<!DOCTYPE html><html><head><title>Page {i}</title>{script}</head><body><nav><ul>{nav}</ul></nav>"
            f"<aside>{side}</aside><main><article><h1>Title {i}</h1>{paras}<table>{table}</table></article></main>"
            f"<footer>Copyright 2024 | Privacy policy | Terms of use</footer></body></html>")


def make_warcs(directory: str, n_records: int, n_files: int, seed: int) -> dict:
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    rng = random.Random(seed)
    lines = _lines(rng)
    per_file = -(-n_records // n_files)
    html_bytes = responses = 0
    for fi in range(n_files):
        with open(os.path.join(directory, f"CC-BENCH-{fi:05d}.warc.gz"), "wb") as f:
            w = WARCWriter(f, gzip=True)
            w.write_record(w.create_warcinfo_record(f"CC-BENCH-{fi:05d}.warc.gz", {"software": "bench", "isPartOf": "CC-BENCH"}))
            for j in range(per_file):
                i = fi * per_file + j
                url = f"http://site{i % 997}.example/{i}"
                w.write_record(w.create_warc_record(url, "request", payload=io.BytesIO(b"GET / HTTP/1.1\r\n\r\n"),
                                                    warc_content_type="application/http; msgtype=request"))
                r = rng.random()
                headers = [("Content-Type", "text/html; charset=utf-8")]
                if r < 0.08:
                    body = bytes(rng.getrandbits(8) for _ in range(rng.randint(2000, 20000)))
                    headers = [("Content-Type", rng.choice(["image/jpeg", "application/pdf", "image/png"]))]
                else:
                    html = _page(rng, lines, i)
                    if r < 0.18:
                        body = html.replace("<head>", '<head><meta charset="windows-1252">').encode("cp1252", "replace")
                        headers = [("Content-Type", "text/html")]
                    else:
                        body = html.encode("utf-8")
                    html_bytes += len(body)
                    if rng.random() < 0.15:
                        body = gzip.compress(body, mtime=0)
                        headers.append(("Content-Encoding", "gzip"))
                http = StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1")
                w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(body), http_headers=http))
                responses += 1
                w.write_record(w.create_warc_record(url, "metadata", payload=io.BytesIO(b"fetchTimeMs: 100\r\n"),
                                                    warc_content_type="application/warc-fields"))
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(directory, "*.warc.gz")))
    return {"files": n_files, "responses": responses, "records": responses * 3 + n_files,
            "input_bytes": size, "html_bytes": html_bytes}


def bench_fastwarc_read(paths: list[str]) -> int:
    from fastwarc.warc import ArchiveIterator

    n = 0
    for p in paths:
        for rec in ArchiveIterator(p, parse_http=False):
            rec.reader.read()
            n += 1
    return n


def bench_minimal_loop(paths: list[str]) -> int:
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    n = 0
    for p in paths:
        for rec in ArchiveIterator(p, record_types=WarcRecordType.response, auto_decode="content"):
            body = rec.reader.read()
            if rec.http_content_type != "text/html":
                continue
            try:
                html = body.decode("utf-8")
            except UnicodeDecodeError:
                html = bytes_to_str(body, detect_encoding(body))
            extract_plain_text(html, main_content=True)
            n += 1
    return n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=3000, help="response records to generate")
    ap.add_argument("--files", type=int, default=2, help="WARC files to spread them over")
    ap.add_argument("--extractors", nargs="+", default=["resiliparse"], choices=["resiliparse", "trafilatura", "justext"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="timed runs per measurement; the best is reported")
    args = ap.parse_args()

    from dclm.extract import ExtractConfig, run_extract

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "in")
        os.makedirs(src)
        t0 = time.perf_counter()
        corpus = make_warcs(src, args.records, args.files, args.seed)
        corpus["generate_seconds"] = round(time.perf_counter() - t0, 2)
        paths = sorted(glob.glob(os.path.join(src, "*.warc.gz")))

        def rates(seconds: float) -> dict:
            return {"seconds": round(seconds, 3),
                    "records_per_s": round(corpus["records"] / seconds, 1),
                    "responses_per_s": round(corpus["responses"] / seconds, 1),
                    "input_MB_per_s": round(corpus["input_bytes"] / 1e6 / seconds, 2),
                    "html_MB_per_s": round(corpus["html_bytes"] / 1e6 / seconds, 2)}

        def best(fn) -> float:
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t)
            return min(times)

        results = {"fastwarc_read": rates(best(lambda: bench_fastwarc_read(paths))),
                   "minimal_loop": rates(best(lambda: bench_minimal_loop(paths)))}
        for name in args.extractors:
            counter = iter(range(10**6))
            outcome = {}

            def run() -> None:
                r = run_extract(ExtractConfig(inputs=(src,), output=os.path.join(tmp, f"out-{name}-{next(counter)}"),
                                              extractor=name, workers=1, progress=False))
                outcome.update(r.totals())

            results[f"dclm_extract_{name}"] = dict(rates(best(run)), pages=outcome["pages"],
                                                  skipped_non_html=outcome["skipped_non_html"])
    print(json.dumps({"benchmark": "extract", "corpus": corpus, "results": results, "cpu_count": os.cpu_count(),
                      "loadavg_before": [round(x, 2) for x in load_before],
                      "loadavg_after": [round(x, 2) for x in os.getloadavg()]}, indent=2))


if __name__ == "__main__":
    main()
