import hashlib

import orjson
import pytest

from dclm.assets.fetch import ASSETS, MANIFEST, fetch_assets, list_assets, select
from dclm.cli import main
from dclm.errors import DclmError

IN_SHARED = ["refinedweb_banned_words_strict_reverse_engineered.txt", "refinedweb_banned_words_hard_reverse_engineered.txt",
             "refinedweb_banned_words_soft_reverse_engineered.txt", "ldnoobw.txt", "iana_tlds.txt"]


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_catalogue_names_dclm_originals():
    names = [a.name for a in ASSETS]
    assert set(IN_SHARED + ["refinedweb_banned_domains_curated.txt", "lid.176.bin", "fasttext_oh_eli5.bin"]) <= set(names)
    for a in ASSETS:
        assert a.url.startswith("https://") and a.mirror_path.endswith(a.name)
    by = {a.name: a for a in ASSETS}
    assert by["lid.176.bin"].url == "https://dl.fbaipublicfiles.com/fasttext/supervised-models/lid.176.bin"
    assert by["fasttext_oh_eli5.bin"].url.endswith(
        "mlfoundations/fasttext-oh-eli5/resolve/main/openhermes_reddit_eli5_vs_rw_v2_bigram_200k_train.bin")
    assert "/datasets/mlfoundations/refinedweb_banned_domains_curated/" in by["refinedweb_banned_domains_curated.txt"].url
    assert by["ldnoobw.txt"].url.endswith("mlfoundations/dclm/main/baselines/mappers/banlists/ldnoobw.txt")
    assert [a.name for a in select(None)] == [a.name for a in ASSETS if a.default]
    with pytest.raises(DclmError, match="unknown asset"):
        select(["nope.bin"])


@pytest.mark.parametrize("as_uri", [True, False])
def test_fetch_from_mirror(shared_dir, tmp_path, as_uri):
    ref = shared_dir / "dclm_reference"
    base = ref.as_uri() if as_uri else str(ref)
    dest = tmp_path / "cache"
    results = {r.name: r for r in fetch_assets(dest=dest, base_url=base)}
    for name in IN_SHARED:
        src = ref / "banlists" / name if name != "iana_tlds.txt" else ref / name
        assert results[name].status == "fetched"
        assert (dest / name).read_bytes() == src.read_bytes()
        assert results[name].sha256 == _sha(src)
    # what the mirror lacks fails cleanly: no file, no partial download
    for name in ("refinedweb_banned_domains_curated.txt", "lid.176.bin", "fasttext_oh_eli5.bin"):
        assert results[name].status == "failed" and "No such file" in results[name].error
        assert not (dest / name).exists()
    assert sorted(p.name for p in dest.iterdir()) == sorted(IN_SHARED + [MANIFEST])
    manifest = orjson.loads((dest / MANIFEST).read_bytes())
    assert manifest["ldnoobw.txt"]["sha256"] == _sha(ref / "banlists" / "ldnoobw.txt")
    assert manifest["ldnoobw.txt"]["source"].endswith("/banlists/ldnoobw.txt")


def test_present_force_and_flat_mirror(tmp_path):
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "lid.176.bin").write_bytes(b"model-v1")  # a flat mirror: no enrichers/... subdirectories
    dest = tmp_path / "cache"
    [r] = fetch_assets(["lid.176.bin"], dest=dest, base_url=mirror.as_uri())
    assert r.status == "fetched" and r.source.endswith("/mirror/lid.176.bin")
    (mirror / "lid.176.bin").write_bytes(b"model-v2")
    [r] = fetch_assets(["lid.176.bin"], dest=dest, base_url=mirror.as_uri())
    assert r.status == "present" and (dest / "lid.176.bin").read_bytes() == b"model-v1"
    [r] = fetch_assets(["lid.176.bin"], dest=dest, base_url=mirror.as_uri(), force=True)
    assert r.status == "fetched" and (dest / "lid.176.bin").read_bytes() == b"model-v2"
    assert r.sha256 == hashlib.sha256(b"model-v2").hexdigest()
    rows = {row["name"]: row for row in list_assets(dest)}
    assert rows["lid.176.bin"]["present"] and rows["lid.176.bin"]["sha256"] == r.sha256
    assert not rows["ldnoobw.txt"]["present"]


def test_cli_uses_asset_cache(shared_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("DCLM_ASSETS_DIR", str(tmp_path / "cache"))
    base = (shared_dir / "dclm_reference").as_uri()
    assert main(["assets", "fetch", "ldnoobw.txt", "iana_tlds.txt", "--base-url", base, "--no-progress"]) == 0
    assert (tmp_path / "cache" / "ldnoobw.txt").is_file()
    assert main(["assets", "fetch", "lid.176.bin", "--base-url", base, "--no-progress"]) == 1
    capsys.readouterr()
    assert main(["assets", "list"]) == 0
    out = capsys.readouterr().out
    assert any(line.startswith("ldnoobw.txt") and "present" in line for line in out.splitlines())
    assert any(line.startswith("lid.176.bin") and "missing" in line for line in out.splitlines())
    assert main(["assets", "fetch", "nope.bin"]) == 2
