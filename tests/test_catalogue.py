"""The procedure catalogue: importing JSON and CSV (`qms-web import-procedures`, every bad row named
by line and column, nothing half-imported, importing again never duplicates), the running
server's catalogue following the file, and the search's quality over 2,000 generated procedures
with real Vietnamese names."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import unicodedata
from pathlib import Path

import aiohttp
import pytest

from display_server.catalogue import catalogue_path, site_catalogue
from display_server.catalogue.importer import CatalogueFileError, parse, parse_csv, parse_json, processing_days
from display_server.catalogue.model import Procedure
from display_server.catalogue.search import FieldMap, SearchIndex, fold, words
from display_server.catalogue.store import Catalogue, read_procedures, write_procedures
from display_server.cli import main
from qms_common.config import load_site_config
from qms_common.devbroker import Broker, free_port
from tests.support.procedures import SAMPLE, generate, sample, write_json
from tests.support.site import write_site
from tests.support.web import running_web, web_extra

SITE_FIELDS = [("ho-tich", "Hộ tịch"), ("dat-dai", "Đất đai"), ("chung-thuc", "Chứng thực"),
               ("dang-ky-kinh-doanh", "Đăng ký kinh doanh")]

CSV = """\
Mã thủ tục,Tên thủ tục,Lĩnh vực,Cấp thực hiện,Thời hạn giải quyết,"Phí, lệ phí",Thành phần hồ sơ,Căn cứ pháp lý,\
Nơi tiếp nhận
1.001193,Đăng ký khai sinh,Hộ tịch,Cấp xã,Trong ngày,Miễn lệ phí,"Tờ khai đăng ký khai sinh
Giấy chứng sinh",Luật Hộ tịch năm 2014,Bộ phận Một cửa
2.000815,Chứng thực bản sao từ bản chính,chung-thuc,Cấp xã,Trong ngày,2.000 đồng/trang,Bản chính; Bản sao,,
"""


@pytest.fixture(scope="module")
def catalogue() -> Catalogue:
    return Catalogue.of(generate(2000), SITE_FIELDS)


def names(found: list[Procedure]) -> list[str]:
    return [p.name for p in found]


# ---------------------------------------------------------------- folding


def test_folding_drops_case_and_marks_and_reads_d_stroke_as_d() -> None:
    assert fold("Đăng ký  KẾT HÔN") == "dang ky ket hon"
    assert fold("ĐẤT ĐAI") == fold("dat dai") == "dat dai"
    # a decomposed (NFD) text, as some keyboards send it, folds like its NFC form
    assert fold(unicodedata.normalize("NFD", "Hộ tịch")) == "ho tich"
    assert words("Chứng thực bản sao, (từ) bản chính!") == ["chung", "thuc", "ban", "sao", "tu", "ban", "chinh"]
    # old and new tone placement are one word
    assert fold("hoà giải") == fold("hòa giải") == "hoa giai"


# ---------------------------------------------------------------- search quality over 2,000 procedures


def test_the_generated_catalogue_is_2000_real_sounding_procedures(catalogue: Catalogue) -> None:
    assert len(catalogue) == 2000
    procedures = catalogue.index.entries
    assert len({e.procedure.code for e in procedures}) == 2000
    assert len({e.procedure.name.casefold() for e in procedures}) == 2000
    for e in procedures:
        assert unicodedata.normalize("NFC", e.procedure.name) == e.procedure.name


@pytest.mark.parametrize("query", ["dang ky ket hon", "kết hôn đăng ký", "ket hon", "KẾT HÔN", "Dang Ky Ket Hon",
                                   "hôn kết", "dang ky ket h", "đăng  ký   kết hôn"])
def test_any_spelling_and_order_finds_dang_ky_ket_hon_first(catalogue: Catalogue, query: str) -> None:
    found = catalogue.search(query)
    assert found[0].name == "Đăng ký kết hôn", names(found[:5])
    assert found[0].code == "1.000894"


@pytest.mark.parametrize(("query", "first"), [
    ("khai sinh", "Đăng ký khai sinh"),
    ("dang ky khai tu", "Đăng ký khai tử"),
    ("xac nhan tinh trang hon nhan", "Cấp Giấy xác nhận tình trạng hôn nhân"),
    ("chung thuc chu ky trong cac", "Chứng thực chữ ký trong các giấy tờ, văn bản"),
    ("thanh lap ho kinh doanh", "Đăng ký thành lập hộ kinh doanh"),
    ("hoa giai tranh chap dat", "Hòa giải tranh chấp đất đai"),
    ("di chuc", "Chứng thực di chúc"),
    ("1.001193", "Đăng ký khai sinh"),  # a procedure's code
])
def test_the_best_match_comes_first(catalogue: Catalogue, query: str, first: str) -> None:
    assert catalogue.search(query)[0].name == first, names(catalogue.search(query)[:5])


def test_every_result_has_every_word_of_the_query(catalogue: Catalogue) -> None:
    for query in ("giay phep xay dung", "cap lai giay chung nhan", "tro cap xa hoi", "ket hon", "hop dong"):
        qwords = words(query)
        found = catalogue.search(query, limit=100)
        assert found, query
        for p in found:
            text = words(" ".join((p.name, p.code, p.field_name, p.level, *p.documents)))
            assert all(any(w.startswith(q) for w in text) for q in qwords), (query, p.name)


def test_names_outrank_other_text_and_shorter_names_outrank_longer(catalogue: Catalogue) -> None:
    found = catalogue.search("ket hon", limit=50)
    in_name = [fold(p.name).find("ket hon") >= 0 for p in found]
    # every procedure with the words in its name before any with them only in its documents
    assert in_name == sorted(in_name, reverse=True)
    assert found.index(next(p for p in found if p.name == "Đăng ký kết hôn")) < found.index(
        next(p for p in found if p.name == "Đăng ký kết hôn có yếu tố nước ngoài"))


def test_prefixes_are_found_as_the_citizen_types(catalogue: Catalogue) -> None:
    assert catalogue.search("khai si")[0].name == "Đăng ký khai sinh"
    assert catalogue.search("chứng th")[0].name.startswith("Chứng thực")


def test_a_field_narrows_the_search_by_id_or_name(catalogue: Catalogue) -> None:
    in_field = catalogue.search("cap lai", field="dat-dai", limit=100)
    assert in_field and all(p.field == "dat-dai" for p in in_field)
    # a field the site does not have is browsed by its name, in any spelling
    social = catalogue.search("tro cap", field="bao tro xa hoi", limit=100)
    assert social and all(p.field_name == "Bảo trợ xã hội" and p.field is None for p in social)
    assert catalogue.search("ket hon", field="dat-dai") == []
    assert catalogue.search("ket hon", field="khong-co") == []


def test_nothing_is_found_for_nonsense_or_an_empty_query(catalogue: Catalogue) -> None:
    assert catalogue.search("xyzzy qwerty") == []
    assert catalogue.search("   ") == []
    assert catalogue.search("!!!") == []
    assert len(catalogue.search("dang ky", limit=7)) == 7


def test_browsing_by_field(catalogue: Catalogue) -> None:
    fields = {key: (name, n) for key, name, n in catalogue.fields()}
    assert fields["ho-tich"][0] == "Hộ tịch"
    assert sum(n for _, n in fields.values()) == 2000
    ho_tich = catalogue.by_field("ho-tich")
    assert len(ho_tich) == fields["ho-tich"][1] and ho_tich[0].name == "Đăng ký khai sinh"  # the file's order
    assert catalogue.by_field("Hộ tịch") == catalogue.by_field("ho tich") == ho_tich
    assert catalogue.by_field("Bảo trợ xã hội")[0].field is None
    assert catalogue.by_field("khong-co") == []


def test_fields_map_by_id_or_by_name_in_any_spelling() -> None:
    fm = FieldMap(SITE_FIELDS)
    assert fm.resolve("ho-tich") == ("ho-tich", "Hộ tịch")
    assert fm.resolve("HỘ TỊCH") == ("ho-tich", "Hộ tịch")
    assert fm.resolve("dang ky kinh doanh") == ("dang-ky-kinh-doanh", "Đăng ký kinh doanh")
    assert fm.resolve("Người có công") == (None, "Người có công")


# ---------------------------------------------------------------- reading files


def test_the_sample_is_at_least_50_real_procedures_with_correct_marks() -> None:
    procedures = sample()
    assert len(procedures) >= 50
    text = SAMPLE.read_text(encoding="utf-8")
    assert unicodedata.normalize("NFC", text) == text
    fields = FieldMap(SITE_FIELDS)
    mapped = [p for p in procedures if fields.resolve(p.field_name)[0] is not None]
    assert len(mapped) >= 40  # most fall in examples/site.toml's fields
    assert all(p.documents and p.processing_text and p.fees and p.legal_basis for p in procedures)


def test_a_csv_with_vietnamese_headers() -> None:
    first, second = parse_csv(CSV)
    assert (first.code, first.name, first.field_name, first.level) == ("1.001193", "Đăng ký khai sinh", "Hộ tịch",
                                                                      "Cấp xã")
    assert first.documents == ("Tờ khai đăng ký khai sinh", "Giấy chứng sinh")  # one a line in the cell
    assert (first.processing_days, first.processing_text) == (0, "Trong ngày")
    assert second.documents == ("Bản chính", "Bản sao")  # ";" separates too
    assert second.fees == "2.000 đồng/trang" and second.legal_basis == ""
    # English headers, semicolons between cells (a spreadsheet's export), a BOM
    english = ("\ufeffcode;name;field;processing time;fees;required documents\n"
               "X-1;Cấp bản sao trích lục hộ tịch;ho-tich;03 ngày làm việc;8.000 đồng;Tờ khai\n")
    (p,) = parse_csv(english)
    assert (p.code, p.processing_days, p.documents) == ("X-1", 3, ("Tờ khai",))


def test_processing_days_from_the_text() -> None:
    assert processing_days("05 ngày làm việc") == 5
    assert processing_days("Trong ngày (tiếp nhận sau 15 giờ thì trả trong ngày làm việc tiếp theo)") == 0
    assert processing_days("Không quá 20 ngày làm việc") == 20
    assert processing_days("04 giờ làm việc") == 0
    assert processing_days("Theo quy định") is None
    (p,) = parse_json('[{"code": "A", "name": "B", "field": "C", "processing_time": 7}]')
    assert (p.processing_days, p.processing_text) == (7, "7 ngày làm việc")


def errors_of(text: str, kind: str) -> list[str]:
    with pytest.raises(CatalogueFileError) as info:
        parse(text, kind)
    return [str(e) for e in info.value.errors]


def test_every_bad_csv_row_is_named_by_line_and_column() -> None:
    bad = ("code,name,field,fees\n"
           "1.1,Đăng ký khai sinh,Hộ tịch,Miễn\n"
           ",Không có mã,Hộ tịch,\n"            # line 3: no code
           "1.3,,Hộ tịch,\n"                    # line 4: no name
           "1 4,Mã có dấu cách,Hộ tịch,\n"      # line 5: a bad code
           '1.5,"Tên\ncó hai dòng",Hộ tịch,\n'  # lines 6-7: fine (a quoted line break)
           "1.1,Trùng mã,Hộ tịch,\n")           # line 8: the code of line 2 again
    assert errors_of(bad, "csv") == [
        "dòng 3, cột “code”: bắt buộc, không được để trống.",
        "dòng 4, cột “name”: bắt buộc, không được để trống.",
        "dòng 5, cột “code”: mã '1 4' chỉ được có chữ không dấu, chữ số và . _ - (tối đa 64 ký tự).",
        "dòng 8, cột “code”: mã '1.1' đã có ở dòng 2.",
    ]
    assert errors_of("ma,ten,fess\n1,a,b\n", "csv") == [
        "dòng 1, cột “fess”: không biết cột này. Các cột: code, name, field, level, processing_time, fees, "
        "documents, legal_basis, submit_at (hoặc tên tiếng Việt như “Tên thủ tục”, “Thành phần hồ sơ”).",
        "dòng 1, cột “field”: thiếu cột bắt buộc."]
    assert errors_of("code,name,field\n1,a,b,c\n", "csv") == ["dòng 2: có 4 ô, nhiều hơn 3 cột của dòng tiêu đề."]
    # a column is named as the file names it: the officer finds “Tên thủ tục” in the spreadsheet
    vietnamese = "Mã thủ tục,Tên thủ tục,Lĩnh vực,Thời hạn giải quyết\n1.1,,Hộ tịch,400 ngày\n"
    assert errors_of(vietnamese, "csv") == ["dòng 2, cột “Tên thủ tục”: bắt buộc, không được để trống.",
                                            "dòng 2, cột “Thời hạn giải quyết”: số ngày làm việc phải từ 0 đến 365."]


def test_every_bad_json_row_is_named_by_line_and_column() -> None:
    bad = """[
  {"code": "1.1", "name": "Đăng ký khai sinh", "field": "Hộ tịch"},
  {
    "code": "1.2",
    "name": "Đăng ký kết hôn",
    "field": "Hộ tịch",
    "processing_time": 999,
    "documents": ["Tờ khai", 5]
  },
  {
    "code": "1.3",
    "nam": "Sai khóa",
    "field": "Hộ tịch"
  },
  "không phải đối tượng"
]"""
    assert errors_of(bad, "json") == [
        "dòng 7, cột “processing_time”: số ngày làm việc phải từ 0 đến 365.",
        "dòng 8, cột “documents”: mỗi giấy tờ là một chuỗi chữ.",
        "dòng 10, cột “name”: bắt buộc, không được để trống.",
        "dòng 12, cột “nam”: không biết khóa này. Các khóa: code, name, field, level, processing_time, fees, "
        "documents, legal_basis, submit_at.",
        "dòng 15: mỗi thủ tục là một đối tượng JSON {…}.",
    ]
    assert errors_of('[\n  {"ma thu tuc": "1", "ten": "", "linh vuc": "Hộ tịch"}\n]', "json") == [
        "dòng 2, cột “ten”: bắt buộc, không được để trống."]
    assert errors_of('[{"code": "1"}', "json") == ["dòng 1: JSON hỏng: Expecting ',' delimiter (ký tự thứ 15)."]
    assert errors_of('{"a": 1}', "json") == ["dòng 1: cần một mảng JSON các thủ tục ([{\"code\": …}, …])."]
    assert errors_of("[]", "json") == ["dòng 1: tệp không có thủ tục nào."]


# ---------------------------------------------------------------- qms-web import-procedures


def site(tmp_path: Path) -> Path:
    path, _ = write_site(tmp_path, "mqtt://127.0.0.1:1")
    return path


def import_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["import-procedures", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_import_then_import_again_updates_and_never_duplicates(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    db = catalogue_path(load_site_config(config))
    assert db == tmp_path / f"{load_site_config(config).id}-procedures.sqlite3"  # beside the core's database
    code, out, _ = import_cli(capsys, str(SAMPLE), "--config", str(config))
    n = len(sample())
    assert code == 0 and f"Đã nhập {n} thủ tục: thêm {n}, cập nhật 0, không đổi 0." in out
    # the fields the site does not have are named: those procedures get no "Lấy số" button
    assert "Lưu ý: lĩnh vực “Bảo trợ xã hội” (6 thủ tục) không có trong [[fields]]" in out
    assert "“Hộ tịch”" not in out
    # again, one name changed and one procedure added: still one row per code
    data = json.loads(SAMPLE.read_text(encoding="utf-8"))
    data[0]["fees"] = "Miễn lệ phí"
    data.append({"code": "9.000001", "name": "Thủ tục mới", "field": "Hộ tịch"})
    again = tmp_path / "again.json"
    again.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    code, out, _ = import_cli(capsys, str(again), "--config", str(config))
    assert code == 0 and f"thêm 1, cập nhật 1, không đổi {n - 1}." in out
    rows = read_procedures(db)
    assert len(rows) == n + 1 and len({p.code for p in rows}) == n + 1
    assert next(p for p in rows if p.code == data[0]["code"]).fees == "Miễn lệ phí"
    # --replace drops what the file no longer names
    code, out, _ = import_cli(capsys, str(SAMPLE), "--config", str(config), "--replace")
    assert code == 0 and "xóa 1." in out and len(read_procedures(db)) == n


def test_a_bad_file_imports_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = site(tmp_path)
    db = catalogue_path(load_site_config(config))
    assert import_cli(capsys, str(SAMPLE), "--config", str(config))[0] == 0
    before = sqlite3.connect(db).execute("SELECT * FROM procedures ORDER BY code").fetchall()
    # a file whose first rows are good and whose last is bad: not one of them is written
    bad = tmp_path / "bad.csv"
    bad.write_text("code,name,field\n1.001193,Tên đã đổi,Hộ tịch\n9.1,Mới,Hộ tịch\n9.2,,Hộ tịch\n", encoding="utf-8")
    code, out, err = import_cli(capsys, str(bad), "--config", str(config))
    assert code == 1 and out == ""
    assert err.splitlines() == [f"{bad}: 1 lỗi, chưa nhập gì (nothing imported):",
                                "  dòng 4, cột “name”: bắt buộc, không được để trống."]
    assert sqlite3.connect(db).execute("SELECT * FROM procedures ORDER BY code").fetchall() == before
    # neither a file that is not there, nor one of another kind
    assert import_cli(capsys, str(tmp_path / "none.json"), "--config", str(config))[0] == 1
    assert import_cli(capsys, str(config), "--config", str(config))[2].startswith("Không biết định dạng")


def test_a_write_that_fails_midway_leaves_the_catalogue_as_it_was(tmp_path: Path) -> None:
    db = tmp_path / "c.sqlite3"
    write_procedures(db, sample())
    before = read_procedures(db)

    def fail(done: int, total: int) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        write_procedures(db, generate(1200), progress=fail)  # fails after 500 rows written
    assert read_procedures(db) == before


def test_a_long_import_shows_its_progress(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    write_json(big, generate(2000))
    db = tmp_path / "big.sqlite3"
    done = subprocess.run([sys.executable, "-m", "display_server", "import-procedures", str(big), "--database",
                           str(db)], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "  … 500/2000" in done.stdout and "  … 2000/2000" in done.stdout
    assert "Đã nhập 2000 thủ tục: thêm 2000, cập nhật 0, không đổi 0." in done.stdout


# ---------------------------------------------------------------- the server's catalogue follows its file


def test_the_running_catalogue_reloads_when_the_file_changes(tmp_path: Path) -> None:
    config = load_site_config(site(tmp_path))
    catalogue = site_catalogue(config)
    assert len(catalogue) == 0 and catalogue.search("khai sinh") == []  # no file yet: empty, no error
    write_procedures(catalogue_path(config), sample()[:10])
    assert len(catalogue) == 10
    assert catalogue.get("1.001193") is not None and catalogue.get("1.001193").field == "ho-tich"
    write_procedures(catalogue_path(config), sample())
    assert len(catalogue) == len(sample())
    assert catalogue.search("ket hon")[0].code == "1.000894"


def test_the_index_keeps_import_order_for_browsing() -> None:
    procedures = [Procedure(code=str(i), name=f"Thủ tục {i}", field=None, field_name="Hộ tịch") for i in range(5)]
    index = SearchIndex(list(reversed(procedures)))
    assert [p.code for p in index.by_field("Hộ tịch")] == ["4", "3", "2", "1", "0"]


async def test_an_import_reaches_the_running_server_and_bad_queries_are_refused(broker: Broker,
                                                                               tmp_path: Path) -> None:
    path, _ = write_site(tmp_path, broker.url, extra=web_extra(tmp_path, free_port()))
    async with running_web(path) as web, aiohttp.ClientSession() as http:
        api = web.url + "/api/procedures"
        async with http.get(api, params={"q": "khai sinh"}) as resp:
            assert resp.status == 200 and (await resp.json())["procedures"] == []
        async with http.get(web.url + "/thu-tuc") as resp:
            assert "Chưa có danh mục thủ tục." in await resp.text()
        # the command line, while the server runs: no restart
        done = await asyncio.create_subprocess_exec(sys.executable, "-m", "display_server", "import-procedures",
                                                    str(SAMPLE), "--config", str(path),
                                                    stdout=asyncio.subprocess.DEVNULL)
        assert await done.wait() == 0
        async with http.get(api, params={"q": "khai sinh", "limit": "3"}) as resp:
            body = await resp.json()
        assert body["procedures"][0]["name"] == "Đăng ký khai sinh" and len(body["procedures"]) == 3
        first = body["procedures"][0]
        assert (first["field"], first["url"], first["kiosk"], first["remote"]) == ("ho-tich", "/thu-tuc/1.001193",
                                                                                   True, None)
        assert {"id": "ho-tich", "name": "Hộ tịch", "count": 20} in body["fields"]
        async with http.get(api, params={"field": "Bảo trợ xã hội"}) as resp:
            social = (await resp.json())["procedures"]
        assert len(social) == 6 and all(p["field"] is None and not p["kiosk"] for p in social)
        async with http.get(api + "/1.000894") as resp:
            assert (await resp.json())["procedure"]["name"] == "Đăng ký kết hôn"
        # refused, clearly, changing nothing
        async with http.get(api + "/khong-co") as resp:
            assert resp.status == 404
            assert (await resp.json())["error"] == {"code": "unknown_procedure",
                                                    "message": "Không tìm thấy thủ tục này."}
        async with http.get(api, params={"q": "x" * 201}) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"]["message"] == "Từ khoá tìm kiếm dài quá 200 ký tự."
        for limit in ("0", "101", "abc"):
            async with http.get(api, params={"q": "a", "limit": limit}) as resp:
                assert resp.status == 400
                assert (await resp.json())["error"]["message"] == "“limit” phải là số nguyên từ 1 đến 100."
        async with http.get(web.url + "/thu-tuc", params={"q": "x" * 201}) as resp:
            assert resp.status == 400 and "Từ khoá tìm kiếm dài quá 200 ký tự." in await resp.text()
        async with http.get(web.url + "/thu-tuc/khong-co") as resp:
            assert resp.status == 404 and "Không tìm thấy thủ tục này." in await resp.text()
        async with http.get(web.url + "/thu-tuc/khong-co/qr.svg") as resp:
            assert resp.status == 404
        # the page without script: the results are in the HTML
        async with http.get(web.url + "/thu-tuc", params={"q": "ket hon dang ky"}) as resp:
            html = await resp.text()
        assert html.index("Đăng ký kết hôn<") < html.index("Đăng ký lại kết hôn<")
