"""`dclm assets fetch|list`: the third-party files DCLM's recipes need (banlists, TLDs, fastText models)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "assets",
        help="download or list DCLM's public assets (banlists, TLD list, fastText models)",
        description="dclm bundles no third-party lists or models. `fetch` downloads DCLM's public originals into the "
        "asset cache ($DCLM_ASSETS_DIR, default ~/.cache/dclm/assets), where YAML paths such as "
        "baselines/mappers/banlists/X.txt are looked up by file name; `list` shows what is present.",
    )
    verbs = p.add_subparsers(dest="assets_verb", metavar="ACTION")
    f = verbs.add_parser("fetch", help="download assets into the cache",
                         description="Download the named assets (default: every asset not marked 'by name only' "
                         "in `dclm assets list`). Files already present are kept unless --force. Each download is "
                         "atomic and its sha256 is recorded in manifest.json.")
    f.add_argument("names", nargs="*", metavar="NAME", help="asset file names, e.g. lid.176.bin ldnoobw.txt")
    f.add_argument("--dest", help="directory to fill instead of the asset cache")
    f.add_argument("--base-url", help="fetch from a mirror laid out like DCLM's baselines/mappers/ (or flat): "
                   "an http(s):// or file:// URL, or a local directory")
    f.add_argument("--force", action="store_true", help="download again even if the file is present")
    f.add_argument("--no-progress", action="store_true", help="no progress bar")
    f.add_argument("--timeout", type=float, default=60.0, help="seconds to wait on a stalled connection (default 60)")
    f.set_defaults(func=_fetch)
    ls = verbs.add_parser("list", help="show which assets are present or missing",
                          description="List every known asset with its status in the cache (or --dest).")
    ls.add_argument("--dest", help="directory to inspect instead of the asset cache")
    ls.set_defaults(func=_list)

    def usage(args: argparse.Namespace) -> int:
        p.print_help()
        return 2

    p.set_defaults(func=usage)


def _fetch(args: argparse.Namespace) -> int:
    from dclm.assets.fetch import fetch_assets

    results = fetch_assets(args.names, dest=args.dest, base_url=args.base_url, force=args.force,
                           progress=not args.no_progress, timeout=args.timeout)
    for r in results:
        if r.status == "failed":
            print(f"FAILED   {r.name}: {r.error}")
        else:
            print(f"{r.status:<8} {r.name} ({r.bytes:,} bytes, sha256 {r.sha256[:12]}) -> {r.path}")
    failed = sum(r.status == "failed" for r in results)
    if failed:
        print(f"dclm: {failed} of {len(results)} assets could not be fetched")
    return 1 if failed else 0


def _list(args: argparse.Namespace) -> int:
    from dclm.assets.fetch import list_assets

    rows = list_assets(args.dest)
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        status = "present" if r["present"] else "missing"
        size = f"{r['bytes']:,} bytes" if r["present"] else ("by name only" if not r["default"] else "")
        print(f"{r['name']:<{width}}  {status:<7}  {size:<18} {r['about']}")
    print(f"cache: {rows[0]['path'].rsplit('/', 1)[0]}")
    return 0
