"""Generated 营业执照 (business licence) and 食品经营许可证 (food business permit) images for
the recognition tests and benchmark.

Every name, person, address and code here is made up from word lists by a seeded random
generator: no real company's or person's data. Several templates (landscape 正本, portrait
副本, an individual business's 个体工商户 licence), two font families, and the damage a
phone camera does: perspective, blur, noise, glare, JPEG compression.
"""

from __future__ import annotations

import functools
import io
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from approval.ids import USCC_ALPHABET, uscc_check_char

FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/opentype/noto/NotoSerifCJK-Bold.ttc",
)
_CITIES = ("德州", "临沂", "潍坊", "聊城", "滨州", "泰安", "济宁", "菏泽", "淄博", "枣庄")
_DISTRICTS = ("德城区", "陵城区", "经济开发区", "高新区", "兰山区", "奎文区", "东昌府区", "滨城区")
_WORDS = ("鑫源", "华泰", "永盛", "金桥", "瑞丰", "宏达", "佳美", "新禾", "利民", "福满", "天润", "和顺", "安康", "众诚", "恒信", "春晖")
_TRADES = ("餐饮管理", "食品", "商贸", "大药房", "酒店管理", "便利店", "农产品", "超市", "快餐", "烘焙")
_FORMS = ("有限公司", "有限责任公司", "股份有限公司")
_SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段雷钱汤尹黎易常武乔贺赖龚文"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建国志鹏宇浩然欣怡子轩梓涵俊博晨阳瑞雪海燕"
_ROADS = ("东风", "新华", "解放", "人民", "建设", "胜利", "湖滨", "学院", "长河", "天衢", "三八", "德兴")
_TYPES_COMPANY = ("有限责任公司(自然人投资或控股)", "有限责任公司(自然人独资)", "股份有限公司(非上市、自然人投资或控股)", "其他有限责任公司")
_REGIONS = ("371402", "371403", "371302", "370702", "371502", "371602", "370902", "370811", "371702", "370302")


def make_uscc(rng: random.Random, authority: str = "91") -> str:
    body = authority + rng.choice(_REGIONS) + "".join(rng.choice(USCC_ALPHABET) for _ in range(9))
    return body + uscc_check_char(body)


@dataclass(frozen=True)
class Licence:
    """What is printed on one generated licence, in the fields recognition extracts."""

    template: str  # "landscape" | "portrait" | "individual"
    fields: dict[str, str]
    font: str
    image: bytes = field(repr=False, default=b"")  # JPEG


def random_fields(rng: random.Random, template: str) -> dict[str, str]:
    city = rng.choice(_CITIES)
    person = rng.choice(_SURNAMES) + "".join(rng.choice(_GIVEN) for _ in range(rng.choice((1, 2))))
    year = rng.randint(2001, 2025)
    month, day = rng.randint(1, 12), rng.randint(1, 28)
    established = f"{year:04d}-{month:02d}-{day:02d}"
    if template == "individual":
        name = f"{city}市{rng.choice(_DISTRICTS)}{rng.choice(_WORDS)}{rng.choice(_TRADES)}店"
        kind = "个体工商户"
        uscc = make_uscc(rng, "92")
        valid_to = "长期"
    else:
        name = f"{city}{rng.choice(_WORDS)}{rng.choice(_WORDS)}{rng.choice(_TRADES)}{rng.choice(_FORMS)}"
        kind = rng.choice(_TYPES_COMPANY)
        uscc = make_uscc(rng)
        valid_to = rng.choice(("长期", f"{year + rng.choice((20, 30)):04d}-{month:02d}-{day:02d}"))
    address = f"山东省{city}市{rng.choice(_DISTRICTS)}{rng.choice(_ROADS)}{rng.choice(('路', '大街', '街'))}{rng.randint(1, 999)}号"
    return {
        "name": name,
        "uscc": uscc,
        "type": kind,
        "legal_representative": person,
        "address": address,
        "established": established,
        "valid_from": established,
        "valid_to": valid_to,
    }


@functools.lru_cache(maxsize=32)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def _cn_date(iso: str) -> str:
    if iso == "长期":
        return iso
    y, m, d = iso.split("-")
    return f"{y}年{m}月{d}日"


def render(fields: dict[str, str], template: str, font_path: str, rng: random.Random) -> Image.Image:
    """The flat, undamaged licence."""
    landscape = template != "portrait"
    width, height = (1400, 980) if landscape else (1000, 1400)
    paper = (rng.randint(236, 252), rng.randint(232, 246), rng.randint(214, 232))
    img = Image.new("RGB", (width, height), paper)
    draw = ImageDraw.Draw(img)
    red = (178, 36, 36)
    draw.rectangle((24, 24, width - 24, height - 24), outline=red, width=10)
    draw.rectangle((44, 44, width - 44, height - 44), outline=red, width=3)
    title_font = _font(font_path, 84 if landscape else 76)
    label_font = _font(font_path, 30)
    value_font = label_font
    title = "营 业 执 照"
    tw = draw.textlength(title, font=title_font)
    draw.text(((width - tw) / 2, 90), title, fill=(20, 20, 20), font=title_font)
    sub = "（副 本）" if template == "portrait" else ""
    if sub:
        draw.text(((width - draw.textlength(sub, font=label_font)) / 2, 190), sub, fill=(20, 20, 20), font=label_font)
    draw.text((90, 240 if landscape else 250), "统一社会信用代码", fill=(20, 20, 20), font=label_font)
    draw.text((90 + 8 * 31 + 20, 240 if landscape else 250), fields["uscc"], fill=(20, 20, 20), font=value_font)
    # a QR-ish square, as printed licences have one (it is noise to the OCR)
    qr = width - 240
    for i in range(12):
        for j in range(12):
            if rng.random() < 0.5:
                draw.rectangle((qr + i * 12, 220 + j * 12, qr + i * 12 + 11, 220 + j * 12 + 11), fill=(25, 25, 25))
    rep_label = "经营者" if template == "individual" else "法定代表人"
    type_label = "组成形式" if template == "individual" else "类型"
    name_label = "名称"
    addr_label = "经营场所" if template == "individual" else "住所"
    rows = [
        (name_label, fields["name"]),
        (type_label, fields["type"] if template != "individual" else "个人经营"),
        (rep_label, fields["legal_representative"]),
        ("成立日期" if template != "individual" else "注册日期", _cn_date(fields["established"])),
        ("营业期限", f"{_cn_date(fields['valid_from'])}至{_cn_date(fields['valid_to'])}"),
        (addr_label, fields["address"]),
    ]
    if template == "individual":
        rows[1] = ("类型", "个体工商户")
    y = 330 if landscape else 360
    step = 78 if landscape else 92
    for label, value in rows:
        spaced = "  ".join(label) if len(label) == 2 else label
        draw.text((90, y), spaced, fill=(20, 20, 20), font=label_font)
        draw.text((300, y), value, fill=(20, 20, 20), font=value_font)
        y += step
    scope_font = _font(font_path, 24)
    draw.text((90, y + 10), "经营范围  一般项目：食品销售（仅销售预包装食品）；日用百货销售。", fill=(40, 40, 40), font=scope_font)
    seal_x, seal_y = width - 330, height - 300
    draw.ellipse((seal_x, seal_y, seal_x + 220, seal_y + 220), outline=(200, 40, 40), width=6)
    draw.text((seal_x - 120, height - 110), f"登记机关  {fields['established'][:4]}年{fields['established'][5:7]}月", fill=(20, 20, 20), font=label_font)
    return img


def permit_fields(rng: random.Random) -> dict[str, str]:
    """What a generated food business permit prints: its holder as a licence would name it,
    a JY number (JY, 1 for the kind of business, the region, seven digits), five years."""
    licence = random_fields(rng, "landscape")
    year, month, day = (int(v) for v in licence["established"].split("-"))
    return {
        "name": licence["name"],
        "uscc": licence["uscc"],
        "legal_representative": licence["legal_representative"],
        "address": licence["address"],
        "permit_no": "JY1" + licence["uscc"][2:8] + "".join(str(rng.randint(0, 9)) for _ in range(7)),
        "valid_to": f"{min(year + 5, 2099):04d}-{month:02d}-{day:02d}",
    }


def render_food_permit(fields: dict[str, str], font_path: str, rng: random.Random) -> Image.Image:
    """The flat, undamaged 食品经营许可证 (正本), laid out as the 2015 model is."""
    width, height = 1400, 980
    img = Image.new("RGB", (width, height), (rng.randint(240, 252), rng.randint(238, 250), rng.randint(228, 242)))
    draw = ImageDraw.Draw(img)
    green = (30, 110, 70)
    draw.rectangle((24, 24, width - 24, height - 24), outline=green, width=10)
    title_font = _font(font_path, 72)
    font = _font(font_path, 30)
    title = "食品经营许可证"
    draw.text(((width - draw.textlength(title, font=title_font)) / 2, 70), title, fill=(20, 20, 20), font=title_font)
    rows = [
        ("经营者名称", fields["name"]),
        ("社会信用代码（身份证号码）", fields["uscc"]),
        ("法定代表人（负责人）", fields["legal_representative"]),
        ("住所", fields["address"]),
        ("经营场所", fields["address"]),
        ("主体业态", "餐饮服务经营者"),
        ("经营项目", "热食类食品制售"),
        ("许可证编号", fields["permit_no"]),
        ("日常监督管理机构", "德城区市场监督管理局"),
        ("有效期至", _cn_date(fields["valid_to"])),
    ]
    y = 190
    for label, value in rows:
        draw.text((90, y), label, fill=(20, 20, 20), font=font)
        draw.text((520, y), value, fill=(20, 20, 20), font=font)
        y += 66
    draw.text((860, height - 110), "发证机关  签发人", fill=(20, 20, 20), font=font)
    draw.ellipse((width - 330, height - 300, width - 110, height - 80), outline=(200, 40, 40), width=6)
    return img


def damage(img: Image.Image, rng: random.Random, *, strength: float = 1.0) -> Image.Image:
    """What a phone camera does to it: perspective, blur, noise, glare (about 1280 wide)."""
    import cv2

    arr = np.asarray(img)
    scale = rng.uniform(0.78, 0.92) * 1280 / (arr.shape[1] * 1.12)
    arr = cv2.resize(arr, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(np.float32)
    h, w = arr.shape[:2]
    if rng.random() < 0.5:  # glare: a soft bright ellipse somewhere, computed small
        gh, gw = h // 8, w // 8
        cy, cx = rng.uniform(0.2, 0.8) * gh, rng.uniform(0.2, 0.8) * gw
        yy, xx = np.mgrid[0:gh, 0:gw].astype(np.float32)
        r = rng.uniform(0.12, 0.22) * gw
        small = np.exp(-(((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r))) * rng.uniform(40, 90) * strength
        glare = cv2.resize(small.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
        arr = arr + glare[..., None]
    margin = 0.06 * w
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)

    def jitter() -> float:
        return rng.uniform(0, margin * strength)

    dst = np.array([
        [margin + jitter(), margin + jitter()],
        [w + margin - jitter(), margin + jitter()],
        [w + margin - jitter(), h + margin - jitter()],
        [margin + jitter(), h + margin - jitter()],
    ], dtype=np.float32)
    out_w, out_h = int(w + 2 * margin), int(h + 2 * margin)
    matrix = cv2.getPerspectiveTransform(src, dst)
    background = (rng.randint(60, 140), rng.randint(60, 120), rng.randint(50, 110))
    warped = cv2.warpPerspective(np.clip(arr, 0, 255), matrix, (out_w, out_h), borderValue=background)
    noise = np.random.default_rng(rng.randint(0, 2**31)).standard_normal(warped.shape, dtype=np.float32)
    warped = warped + noise * np.float32(rng.uniform(2, 8) * strength)
    sigma = rng.uniform(0.0, 1.2) * strength
    out = np.clip(warped, 0, 255).astype(np.uint8)
    if sigma > 0.2:
        out = cv2.GaussianBlur(out, (0, 0), sigma)
    return Image.fromarray(out)


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


TEMPLATES = ("landscape", "portrait", "individual")


def licence(index: int, seed: int = 14) -> Licence:
    """Licence number ``index`` of the series ``seed``: the same image every time."""
    rng = random.Random(f"{seed}/{index}")
    template = TEMPLATES[index % len(TEMPLATES)]
    font = FONTS[index % len(FONTS)]
    fields = random_fields(rng, template)
    img = damage(render(fields, template, font, rng), rng)
    return Licence(template, fields, Path(font).name, jpeg(img, rng.randint(45, 85)))


def licences(count: int, seed: int = 14) -> list[Licence]:
    """``count`` damaged licence images, the same for the same seed."""
    return [licence(i, seed) for i in range(count)]
