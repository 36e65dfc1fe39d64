"""A generated catalogue of real-sounding Vietnamese procedures, for the search-quality tests and
the benchmark: the sample of examples/procedures.json, then combinations of the patterns real
procedure names follow (action + object + qualifier) until there are as many as asked.

The combinations are deliberately close to the real ones ("Đăng ký lại kết hôn có yếu tố nước
ngoài", "Cấp lại giấy chứng nhận quyền sử dụng đất do bị mất"), so that a search must rank, not
merely find.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from display_server.catalogue.importer import parse_json
from display_server.catalogue.model import Procedure

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "procedures.json"

# field name → (actions, objects): every action goes with every object of its field
PATTERNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "Hộ tịch": (
        ("Đăng ký", "Đăng ký lại", "Ghi vào sổ hộ tịch việc", "Cấp bản sao trích lục", "Xác nhận thông tin về"),
        ("khai sinh", "kết hôn", "khai tử", "giám hộ", "chấm dứt giám hộ", "nhận cha, mẹ, con",
         "thay đổi, cải chính, bổ sung thông tin hộ tịch", "xác định lại dân tộc", "ly hôn, hủy việc kết hôn",
         "nuôi con nuôi", "tình trạng hôn nhân"),
    ),
    "Chứng thực": (
        ("Chứng thực", "Cấp bản sao có chứng thực", "Chứng thực việc sửa đổi", "Chứng thực việc hủy bỏ"),
        ("bản sao từ bản chính giấy tờ", "chữ ký trong giấy tờ, văn bản", "chữ ký người dịch",
         "hợp đồng chuyển nhượng quyền sử dụng đất", "hợp đồng tặng cho quyền sử dụng đất", "hợp đồng thế chấp nhà ở",
         "hợp đồng mua bán tài sản là động sản", "văn bản thỏa thuận phân chia di sản", "văn bản khai nhận di sản",
         "di chúc", "văn bản từ chối nhận di sản", "hợp đồng ủy quyền"),
    ),
    "Đất đai": (
        ("Cấp", "Cấp lại", "Cấp đổi", "Đính chính", "Thu hồi", "Đăng ký biến động", "Xác nhận"),
        ("Giấy chứng nhận quyền sử dụng đất", "Giấy chứng nhận quyền sở hữu nhà ở", "quyền sử dụng đất nông nghiệp",
         "tài sản gắn liền với đất", "thửa đất do tách thửa, hợp thửa", "quyền sử dụng đất do thừa kế",
         "quyền sử dụng đất do chuyển nhượng", "quyền sử dụng đất do tặng cho", "mục đích sử dụng đất",
         "thời hạn sử dụng đất", "hạn mức giao đất ở"),
    ),
    "Đăng ký kinh doanh": (
        ("Đăng ký thành lập", "Đăng ký thay đổi nội dung", "Cấp lại Giấy chứng nhận đăng ký",
         "Tạm ngừng kinh doanh của",
         "Chấm dứt hoạt động", "Thông báo thay đổi", "Hiệu đính thông tin"),
        ("hộ kinh doanh", "hợp tác xã", "liên hiệp hợp tác xã", "tổ hợp tác", "chi nhánh hợp tác xã",
         "văn phòng đại diện hợp tác xã", "địa điểm kinh doanh của hộ kinh doanh"),
    ),
    "Bảo trợ xã hội": (
        ("Thực hiện", "Điều chỉnh", "Thôi hưởng", "Hỗ trợ", "Xác định", "Tiếp nhận đối tượng hưởng"),
        ("trợ cấp xã hội hàng tháng", "chi phí mai táng", "kinh phí chăm sóc, nuôi dưỡng hàng tháng",
         "mức độ khuyết tật", "trợ giúp xã hội khẩn cấp", "hỗ trợ làm nhà ở", "chăm sóc tại cộng đồng",
         "trợ cấp cho người cao tuổi", "trợ cấp cho trẻ em mồ côi"),
    ),
    "Người có công": (
        ("Giải quyết chế độ", "Điều chỉnh chế độ", "Công nhận", "Cấp lại", "Hỗ trợ"),
        ("ưu đãi đối với thân nhân liệt sĩ", "trợ cấp một lần đối với người hoạt động kháng chiến",
         "mai táng phí đối với cựu chiến binh", "thờ cúng liệt sĩ", "điều dưỡng phục hồi sức khỏe",
         "giấy chứng nhận gia đình liệt sĩ", "bảo hiểm y tế đối với người có công", "thăm viếng mộ liệt sĩ"),
    ),
    "Xây dựng": (
        ("Cấp", "Điều chỉnh", "Gia hạn", "Cấp lại", "Thu hồi"),
        ("giấy phép xây dựng mới đối với nhà ở riêng lẻ", "giấy phép sửa chữa, cải tạo nhà ở riêng lẻ",
         "giấy phép di dời công trình", "giấy phép xây dựng có thời hạn", "giấy phép xây dựng công trình tín ngưỡng",
         "giấy phép xây dựng công trình quảng cáo"),
    ),
    "Môi trường": (
        ("Đăng ký", "Xác nhận", "Cấp", "Điều chỉnh", "Gia hạn"),
        ("kế hoạch bảo vệ môi trường", "giấy phép môi trường", "phương án cải tạo, phục hồi môi trường",
         "giấy phép khai thác nước mặt", "giấy phép xả nước thải vào nguồn nước", "giấy phép khai thác nước dưới đất"),
    ),
    "Giáo dục và Đào tạo": (
        ("Cho phép thành lập", "Cho phép hoạt động", "Sáp nhập, chia, tách", "Giải thể", "Cho phép hoạt động trở lại"),
        ("trường mầm non", "nhóm trẻ, lớp mẫu giáo độc lập", "trường tiểu học", "trường trung học cơ sở",
         "trung tâm học tập cộng đồng", "cơ sở giáo dục mầm non tư thục"),
    ),
    "Văn hóa": (
        ("Cấp", "Cấp lại", "Điều chỉnh", "Thông báo", "Công nhận"),
        ("giấy phép kinh doanh karaoke", "giấy phép tổ chức lễ hội", "danh hiệu Gia đình văn hóa",
         "danh hiệu Thôn, tổ dân phố văn hóa", "giấy chứng nhận đủ điều kiện kinh doanh dịch vụ lữ hành",
         "thư viện cộng đồng"),
    ),
    "Công thương": (
        ("Cấp", "Cấp lại", "Cấp sửa đổi, bổ sung", "Gia hạn"),
        ("giấy phép bán lẻ rượu", "giấy phép bán lẻ sản phẩm thuốc lá", "giấy phép sản xuất rượu thủ công",
         "giấy chứng nhận đủ điều kiện cửa hàng bán lẻ xăng dầu", "giấy chứng nhận đủ điều kiện an toàn thực phẩm",
         "giấy phép bán lẻ hàng hóa"),
    ),
    "Nông nghiệp": (
        ("Cấp", "Cấp lại", "Hỗ trợ", "Phê duyệt", "Xác nhận"),
        ("giấy chứng nhận kinh tế trang trại", "kinh phí khắc phục thiệt hại do thiên tai", "dự án liên kết sản xuất",
         "giấy chứng nhận cơ sở an toàn dịch bệnh", "đăng ký tàu cá", "hỗ trợ giống cây trồng sau thiên tai"),
    ),
}
QUALIFIERS = ("", "", "", " cho hộ gia đình, cá nhân", " có yếu tố nước ngoài", " tại cấp xã", " tại cấp huyện",
              " trong trường hợp bị mất, hư hỏng", " theo thủ tục rút gọn", " đối với người khuyết tật",
              " lưu động", " trực tuyến")
LEVELS = ("Cấp xã", "Cấp huyện")
TIMES = ("Trong ngày", "03 ngày làm việc", "05 ngày làm việc", "07 ngày làm việc", "10 ngày làm việc",
         "15 ngày làm việc", "20 ngày làm việc")
FEES = ("Không thu", "Miễn lệ phí", "Theo mức HĐND tỉnh quy định", "50.000 đồng/hồ sơ", "100.000 đồng/trường hợp")
DOCUMENTS = ("Tờ khai theo mẫu", "Giấy tờ tùy thân (căn cước công dân hoặc hộ chiếu)", "Đơn đề nghị theo mẫu",
             "Bản sao giấy tờ chứng minh", "Văn bản ủy quyền (nếu có)", "Bản vẽ, sơ đồ (nếu có)",
             "Giấy xác nhận của UBND cấp xã")


def sample() -> list[Procedure]:
    """The real procedures of examples/procedures.json."""
    return parse_json(SAMPLE.read_text(encoding="utf-8"))


def generate(n: int = 2000, seed: int = 13) -> list[Procedure]:
    """`n` procedures with distinct codes and names: the sample first, then combinations."""
    rnd = random.Random(seed)
    procedures = sample()[:n]
    names = {p.name.casefold() for p in procedures}
    combos = [(field, f"{action} {obj}{q}") for field, (actions, objects) in PATTERNS.items()
              for action in actions for obj in objects for q in QUALIFIERS]
    rnd.shuffle(combos)
    number = 0
    for field, name in combos:
        if len(procedures) >= n:
            break
        name = name[0].upper() + name[1:]
        if name.casefold() in names:
            continue
        names.add(name.casefold())
        number += 1
        time = rnd.choice(TIMES)
        procedures.append(Procedure(
            code=f"9.{number:06d}", name=name, field=None, field_name=field, level=rnd.choice(LEVELS),
            processing_days=int(time[:2]) if time[0].isdigit() else 0, processing_text=time, fees=rnd.choice(FEES),
            documents=tuple(rnd.sample(DOCUMENTS, 3)), legal_basis="Văn bản quy phạm pháp luật chuyên ngành",
            submit_at="Bộ phận Một cửa"))
    if len(procedures) < n:
        raise ValueError(f"only {len(procedures)} distinct procedures can be made")
    return procedures


def write_json(path: Path, procedures: list[Procedure]) -> None:
    """The import format (examples/procedures.json's)."""
    path.write_text(json.dumps([{"code": p.code, "name": p.name, "field": p.field_name, "level": p.level,
                                 "processing_time": p.processing_text, "fees": p.fees, "documents": list(p.documents),
                                 "legal_basis": p.legal_basis, "submit_at": p.submit_at} for p in procedures],
                               ensure_ascii=False, indent=1), encoding="utf-8")
