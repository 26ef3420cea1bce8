"""Tests for marscraters.download against a real local HTTP server (no internet)."""

from __future__ import annotations

import hashlib
import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pooch
import pytest
from PIL import Image

from marscraters import download as dl
from marscraters.errors import DownloadError, InvalidArgumentError, MarsCratersError, TileNameError

from tests.httpserver import FileServer, closed_port_url, etag

TILE = "thm_dir_N-30_030.png"
ZIP_2012 = "RobbinsCraterDatabase_20121016.tsv.zip"
ZIP_2020 = "Catalog_Mars_Release_2020_1kmPlus_FullMorphData.csv.zip"


# ------------------------------------------------------------------------------------------
# fixtures: tiny real files
# ------------------------------------------------------------------------------------------
def _png(seed: int = 0, size: int = 64) -> bytes:
    # noise does not compress, so the file is big enough (~4 kB) to be cut part-way
    arr = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG")
    return buf.getvalue()


TSV_2012 = (
    "CRATER_ID\tLATITUDE_CIRCLE_IMAGE\tLONGITUDE_CIRCLE_IMAGE\tDIAM_CIRCLE_IMAGE\tDEPTH_RIMFLOOR_TOPOG\n"
    "01-000000\t84.367\t108.746\t82.10\t0.22\n"
    "01-000001\t-12.5\t-150.25\t3.40\t0.10\n"
)
CSV_2020 = (
    "\ufeffCRATER_ID,LAT_CIRC_IMG,LON_CIRC_IMG,DIAM_CIRC_IMG,CONF\n"
    "07-0-002189,-25.79,332.98,10.88,4\n"
    "07-0-002190,-20.10,335.00,2.50,3\n"
)


def _zip(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    with FileServer() as srv:
        srv.files[TILE] = _png()
        # a macOS-made archive: the resource fork must not be mistaken for the table
        srv.files[ZIP_2012] = _zip(
            {
                "RobbinsCraters_20121016.tsv": TSV_2012.encode("latin-1"),
                "__MACOSX/._RobbinsCraters_20121016.tsv": b"\x00\x05\x16\x07junk",
            }
        )
        srv.files[ZIP_2020] = _zip({"Catalog_Mars_Release_2020_1kmPlus_FullMorphData.csv": CSV_2020.encode()})
        yield srv


@pytest.fixture(autouse=True)
def _no_env(monkeypatch):
    # the user's own mirror/cache settings must not leak into the tests
    for var in (dl.ENV_CACHE, dl.ENV_THEMIS_URL, dl.ENV_ROBBINS_URL):
        monkeypatch.delenv(var, raising=False)


def _leftovers(folder: Path) -> list[str]:
    """Files in ``folder``: partials, temporaries and lock files are all leftovers."""
    return sorted(p.name for p in folder.iterdir())


# ------------------------------------------------------------------------------------------
# THEMIS tiles
# ------------------------------------------------------------------------------------------
def test_download_themis_tile(server, tmp_path):
    path = dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    assert path == tmp_path / TILE
    assert path.read_bytes() == server.files[TILE]
    with Image.open(path) as im:
        assert im.size == (64, 64) and im.mode == "L"
    assert len(server.gets(TILE)) == 1
    assert _leftovers(tmp_path) == [TILE]  # no .part, no temporary file


def test_second_call_uses_cache_without_request(server, tmp_path):
    first = dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    second = dl.download_themis("N-30_030", dest=str(tmp_path), base_url=server.url, progress=False)
    assert first == second
    assert len(server.hits) == 1


@pytest.mark.parametrize(
    ("tile", "name"),
    [
        ("N-30_030", "thm_dir_N-30_030.png"),
        ("thm_dir_N-30_030.png", "thm_dir_N-30_030.png"),
        ((-30, 30), "thm_dir_N-30_030.png"),
        ((-30.0, -330.0 + 360), "thm_dir_N-30_030.png"),
        ((0, 330), "thm_dir_N00_330.png"),
        ((0, -30), "thm_dir_N00_330.png"),  # -180..180 longitude of the same west edge
        ("N00_000", "thm_dir_N00_000.png"),
        ((30, 120), "thm_dir_N30_120.png"),
        ((-90, 0), "thm_dir_N-90_000.png"),
        (Path("/data/thm_dir_N60_300.png"), "thm_dir_N60_300.png"),
    ],
)
def test_tile_forms_request_canonical_name(server, tmp_path, tile, name):
    server.files[name] = b"\x89PNG\r\n\x1a\n" + b"png bytes"  # a tile is checked to be a PNG
    path = dl.download_themis(tile, dest=tmp_path, base_url=server.url, progress=False)
    assert path.name == name
    assert [h.path for h in server.hits] == ["/" + name]
    assert dl.themis_tile_url(tile, base_url=server.url) == server.url + name


@pytest.mark.parametrize(
    "tile",
    ["N-45_030", "N30_015", "N90_000", "N00_360", "S30_030", "thm_dir_N30.png", "", (10, 30), (0, 31),
     (0.5, 30), ("a", "b"), 42, (1, 2, 3)],
)
def test_bad_tile_ids_raise_without_network(server, tmp_path, tile):
    with pytest.raises(TileNameError) as info:
        dl.download_themis(tile, dest=tmp_path, base_url=server.url, progress=False)
    msg = str(info.value)
    assert "-90" in msg and "-60" in msg and "330" in msg  # names the valid values
    assert isinstance(info.value, MarsCratersError) and isinstance(info.value, ValueError)
    assert server.hits == []


def test_a_file_given_as_the_download_folder_is_refused_before_any_request(server, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    for dest in (afile, afile / "sub"):  # the folder, or one of its parents, is a file
        with pytest.raises(InvalidArgumentError, match="is an existing file. Give dest=<folder>"):
            dl.download_themis("N-30_030", dest=dest, base_url=server.url, progress=False)
    assert server.hits == [] and afile.read_text() == "not a folder"


def test_bad_tile_message_points_to_containing_tile():
    with pytest.raises(TileNameError, match="lies in tile N00_030"):
        dl.themis_tile_name((10, 45))


# ------------------------------------------------------------------------------------------
# resuming
# ------------------------------------------------------------------------------------------
def test_resume_after_truncated_transfer(server, tmp_path):
    data = server.files[TILE]
    server.cut_after[TILE] = 1000
    with pytest.raises(DownloadError, match="resume") as info:
        dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    assert TILE in str(info.value)
    part = tmp_path / (TILE + ".part")
    assert not (tmp_path / TILE).exists()  # nothing half-written at the final path
    assert part.read_bytes() == data[:1000]

    path = dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    assert path.read_bytes() == data
    first, second = server.gets(TILE)
    assert "Range" not in first.headers
    assert second.headers["Range"] == "bytes=1000-"
    assert second.headers["If-Range"] == etag(data)
    assert second.status == 206
    assert _leftovers(tmp_path) == [TILE]


def test_resume_falls_back_to_full_download_when_range_is_ignored(server, tmp_path):
    data = server.files[TILE]
    server.cut_after[TILE] = 1500
    with pytest.raises(DownloadError):
        dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    server.ignore_range = True
    path = dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    assert path.read_bytes() == data  # not the first 1500 bytes twice
    assert server.gets(TILE)[-1].headers["Range"] == "bytes=1500-"
    assert server.gets(TILE)[-1].status == 200


def test_resume_restarts_when_remote_file_changed(server, tmp_path):
    server.cut_after[TILE] = 1000
    with pytest.raises(DownloadError):
        dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    server.files[TILE] = new = _png(seed=1)
    path = dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    assert path.read_bytes() == new  # If-Range did not match: whole new file, no splice
    assert server.gets(TILE)[-1].status == 200


@pytest.mark.parametrize("extra", [b"", b"stale tail"])
def test_leftover_part_at_or_past_the_end(server, tmp_path, extra):
    # a crash after the last byte (complete .part) or a .part longer than the remote file
    data = server.files[TILE]
    (tmp_path / (TILE + ".part")).write_bytes(data + extra)
    path = dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    assert path.read_bytes() == data
    assert server.gets(TILE)[0].status == 416
    assert _leftovers(tmp_path) == [TILE]


# ------------------------------------------------------------------------------------------
# checksums
# ------------------------------------------------------------------------------------------
def test_checksum_match(server, tmp_path):
    good = _sha256(server.files[TILE])
    path = dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False, known_hash=good)
    assert pooch.file_hash(str(path)) == good.split(":")[1]
    # the cached file is checked again and still needs no request
    dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False, known_hash=good)
    assert len(server.hits) == 1


def test_checksum_mismatch_deletes_file_and_names_hashes(server, tmp_path):
    wrong = "sha256:" + "0" * 64
    actual = hashlib.sha256(server.files[TILE]).hexdigest()
    with pytest.raises(DownloadError) as info:
        dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False, known_hash=wrong)
    msg = str(info.value)
    assert TILE in msg and "0" * 64 in msg and actual in msg
    assert _leftovers(tmp_path) == []


def test_corrupt_cached_file_is_downloaded_again(server, tmp_path):
    (tmp_path / TILE).write_bytes(b"garbage")
    good = _sha256(server.files[TILE])
    path = dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False, known_hash=good)
    assert path.read_bytes() == server.files[TILE]
    assert len(server.gets(TILE)) == 1


def test_md5_hash_accepted_and_bad_hash_rejected(server, tmp_path):
    md5 = "md5:" + hashlib.md5(server.files[TILE]).hexdigest()
    dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False, known_hash=md5)
    with pytest.raises(InvalidArgumentError, match="not a hash"):
        dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False, known_hash="oops!")


# ------------------------------------------------------------------------------------------
# HTTP and connection errors
# ------------------------------------------------------------------------------------------
def test_http_404_names_url_and_mirror_variable(server, tmp_path):
    del server.files[TILE]
    with pytest.raises(DownloadError) as info:
        dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False)
    msg = str(info.value)
    assert server.url + TILE in msg and "404" in msg and "MARSCRATERS_THEMIS_URL" in msg
    assert isinstance(info.value, OSError)
    assert _leftovers(tmp_path) == []


def test_connection_refused_names_url_and_mirror_variable(tmp_path):
    url = closed_port_url()
    with pytest.raises(DownloadError) as info:
        dl.download_robbins("2012", dest=tmp_path, base_url=url, progress=False)
    msg = str(info.value)
    assert url + ZIP_2012 in msg and "cannot connect" in msg and "MARSCRATERS_ROBBINS_URL" in msg
    assert _leftovers(tmp_path) == []


def test_base_url_must_be_a_url(tmp_path):
    for local in ("file:///tmp/mirror/", "ftp://example.org/thm_dir/"):  # requests has no adapter: say so
        with pytest.raises(InvalidArgumentError, match="is not an HTTP\\(S\\) mirror.*marscraters ingest"):
            dl.download_themis("N-30_030", dest=tmp_path, base_url=local, progress=False)
    with pytest.raises(InvalidArgumentError, match="not a URL"):
        dl.download_themis("N-30_030", dest=tmp_path, base_url="mirror.example.org/tiles", progress=False)


# ------------------------------------------------------------------------------------------
# Robbins catalogs
# ------------------------------------------------------------------------------------------
def test_robbins_2012_zip_is_unpacked(server, tmp_path):
    table = dl.download_robbins("2012", dest=tmp_path, base_url=server.url, progress=False)
    assert table.name == "RobbinsCraters_20121016.tsv"
    assert table.parent == tmp_path / (ZIP_2012 + ".unzip")
    df = pd.read_csv(table, sep="\t", encoding="latin-1")
    assert list(df["CRATER_ID"]) == ["01-000000", "01-000001"]
    assert df["LONGITUDE_CIRCLE_IMAGE"].tolist() == [108.746, -150.25]
    # cached: no second request, same table
    assert dl.download_robbins("2012", dest=tmp_path, base_url=server.url, progress=False) == table
    assert len(server.hits) == 1


def test_robbins_2020_zip_is_unpacked(server, tmp_path):
    table = dl.download_robbins("2020", dest=tmp_path, base_url=server.url, progress=False)
    assert table.name == "Catalog_Mars_Release_2020_1kmPlus_FullMorphData.csv"
    df = pd.read_csv(table, encoding="utf-8-sig")
    assert df.columns[0] == "CRATER_ID" and len(df) == 2


def test_robbins_removed_table_is_extracted_again_without_request(server, tmp_path):
    table = dl.download_robbins("2012", dest=tmp_path, base_url=server.url, progress=False)
    table.unlink()
    again = dl.download_robbins("2012", dest=tmp_path, base_url=server.url, progress=False)
    assert again == table and again.read_bytes() == TSV_2012.encode("latin-1")
    assert len(server.hits) == 1


def test_robbins_unzipped_release(server, tmp_path, monkeypatch):
    entry = dl.RemoteFile(
        key="plain", kind="robbins", description="test", url="https://unused.invalid/plain.tsv",
        filename="plain.tsv", known_hash=_sha256(TSV_2012.encode()), zipped=False, member=None,
        citation="", landing_page="",
    )
    monkeypatch.setitem(dl.ROBBINS_RELEASES, "plain", entry)
    server.files["plain.tsv"] = TSV_2012.encode()
    table = dl.download_robbins("plain", dest=tmp_path, base_url=server.url, progress=False)
    assert table == tmp_path / "plain.tsv"
    assert table.read_text() == TSV_2012


def test_robbins_zip_without_table(server, tmp_path):
    server.files[ZIP_2020] = _zip({"README.pdf": b"%PDF-1.4"})
    with pytest.raises(DownloadError, match="no .tsv/.csv table"):
        dl.download_robbins("2020", dest=tmp_path, base_url=server.url, progress=False)


def test_robbins_corrupt_zip_is_not_cached(server, tmp_path):
    server.files[ZIP_2020] = b"<html>maintenance page served with status 200</html>"
    with pytest.raises(DownloadError, match="not a valid zip archive"):
        dl.download_robbins("2020", dest=tmp_path, base_url=server.url, progress=False)
    assert not (tmp_path / ZIP_2020).exists()
    server.files[ZIP_2020] = _zip({"Catalog_Mars_Release_2020_1kmPlus_FullMorphData.csv": CSV_2020.encode()})
    table = dl.download_robbins("2020", dest=tmp_path, base_url=server.url, progress=False)
    assert table.read_text(encoding="utf-8-sig").startswith("CRATER_ID")
    assert len(server.gets(ZIP_2020)) == 2


def test_robbins_unknown_release():
    with pytest.raises(InvalidArgumentError, match="'2012', '2014', '2020'"):
        dl.download_robbins("2013", progress=False)


def test_robbins_default_urls_are_the_authors_site():
    for key, entry in dl.ROBBINS_RELEASES.items():
        assert entry.url == "https://craters.sjrdesign.net/" + entry.filename
        assert entry.known_hash is None  # nobody verified one; never invent
        assert entry.zipped and entry.filename.endswith(".zip")


# ------------------------------------------------------------------------------------------
# cache location and environment overrides
# ------------------------------------------------------------------------------------------
def test_env_vars_set_cache_and_mirrors(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MARSCRATERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("MARSCRATERS_THEMIS_URL", server.url.rstrip("/"))  # no trailing slash is fine
    monkeypatch.setenv("MARSCRATERS_ROBBINS_URL", server.url)
    assert dl.cache_dir() == tmp_path / "cache"
    tile = dl.download_themis("N-30_030", progress=False)
    table = dl.download_robbins("2020", progress=False)
    assert tile == tmp_path / "cache" / "themis" / TILE
    assert table.is_relative_to(tmp_path / "cache" / "robbins")
    assert [h.path for h in server.hits] == ["/" + TILE, "/" + ZIP_2020]


def test_arguments_override_env_vars(server, tmp_path, monkeypatch):
    monkeypatch.setenv("MARSCRATERS_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("MARSCRATERS_THEMIS_URL", closed_port_url())
    path = dl.download_themis("N-30_030", dest=tmp_path / "mine", base_url=server.url, progress=False)
    assert path == tmp_path / "mine" / TILE
    assert not (tmp_path / "env-cache").exists()


def test_default_cache_is_pooch_os_cache():
    assert dl.cache_dir() == Path(pooch.os_cache("marscraters"))
    assert dl.themis_tile_url("N-30_030") == "https://www.mars.asu.edu/data/thm_dir/large/thm_dir_N-30_030.png"


# ------------------------------------------------------------------------------------------
# progress, concurrency, registry
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("progress", [True, False])
def test_progress_bar(server, tmp_path, capsys, progress):
    dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=progress)
    err = capsys.readouterr().err
    assert (TILE in err) is progress


def test_concurrent_downloads_of_one_file_fetch_it_once(server, tmp_path):
    results: list[Path] = []
    errors: list[BaseException] = []

    def worker():
        try:
            results.append(dl.download_themis("N-30_030", dest=tmp_path, base_url=server.url, progress=False))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert results == [tmp_path / TILE] * 4
    assert len(server.gets(TILE)) == 1
    assert (tmp_path / TILE).read_bytes() == server.files[TILE]
    assert _leftovers(tmp_path) == [TILE]  # the lock file went with the last download


def test_registry_lists_all_known_files():
    reg = dl.registry()
    assert len(reg) == len(dl.ROBBINS_RELEASES) + 72
    assert reg["filename"].is_unique
    themis = dl.registry("themis")
    assert len(themis) == 72 and set(themis["kind"]) == {"themis"}
    assert themis["url"].str.fullmatch(
        r"https://www\.mars\.asu\.edu/data/thm_dir/large/thm_dir_N(-90|-60|-30|00|30|60)_(\d{3})\.png"
    ).all()
    assert {"N00_000", "N-30_030", "N60_330", "N-90_000"} <= set(themis["key"])
    robbins = dl.registry("robbins")
    assert list(robbins["key"]) == list(dl.ROBBINS_RELEASES)
    assert set(robbins["env_var"]) == {"MARSCRATERS_ROBBINS_URL"}
    with pytest.raises(InvalidArgumentError):
        dl.registry("ctx")
