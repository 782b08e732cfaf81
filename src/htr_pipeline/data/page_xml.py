"""Reading the text lines of a PAGE-XML or ALTO file: geometry, text, region and reading order.

The format is recognised per file by the namespace of its root element (PAGE 2010, 2013 and 2019; ALTO v2, v3
and v4). Parsed with lxml, never with regular expressions. Nothing here opens the page image: coordinates are
returned as the file states them, in the frame of the size the file declares.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

Point = tuple[float, float]

PAGE_NAMESPACES = {
    "http://schema.primaresearch.org/PAGE/gts/pagecontent/2010-03-19": "page-2010",
    "http://schema.primaresearch.org/PAGE/gts/pagecontent/2013-07-15": "page-2013",
    "http://schema.primaresearch.org/PAGE/gts/pagecontent/2019-07-15": "page-2019",
}
ALTO_NAMESPACES = {
    "http://www.loc.gov/standards/alto/ns-v2#": "alto-v2",
    "http://www.loc.gov/standards/alto/ns-v3#": "alto-v3",
    "http://www.loc.gov/standards/alto/ns-v4#": "alto-v4",
}
_TRANSKRIBUS_READING_ORDER = re.compile(r"readingOrder\s*\{[^}]*index\s*:\s*(\d+)")


class XmlParseError(ValueError):
    """The file is not well-formed XML, or a PAGE/ALTO file whose structure cannot be read."""


class UnknownXmlFormatError(ValueError):
    """Well-formed XML whose root namespace is neither a PAGE nor an ALTO version we read."""


@dataclass(frozen=True)
class XmlLine:
    line_id: str
    polygon: tuple[Point, ...] | None
    """The line's outline (PAGE Coords, ALTO Shape/Polygon, else the ALTO box); ``None`` when absent."""
    baseline: tuple[Point, ...] | None
    text: str
    """As written in the file (not yet normalised); empty when the line has no text."""
    region_id: str | None
    region_type: str | None
    reading_order: int
    """Position of the line in the page's reading order, from 0."""


@dataclass(frozen=True)
class PageLayout:
    xml_format: str
    """``page-2010`` ... ``alto-v4``."""
    image_filename: str | None
    declared_size: tuple[int, int] | None
    """(width, height) the file declares for its page image; ``None`` when it declares none."""
    lines: tuple[XmlLine, ...]


def count_text_lines(path: Path) -> int:
    """Every ``TextLine`` element of a well-formed file, whatever its namespace (for accounting)."""
    root = _parse(path)
    return sum(1 for _ in root.iter("{*}TextLine"))


def _parse(path: Path) -> etree._Element:
    try:
        return etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True)).getroot()
    except (etree.XMLSyntaxError, OSError) as error:
        raise XmlParseError(f"{path}: not well-formed XML ({error})") from None


def read_page_layout(path: Path) -> PageLayout:
    """The lines of a PAGE or ALTO file, in reading order."""
    root = _parse(path)
    namespace = etree.QName(root).namespace or ""
    if namespace in PAGE_NAMESPACES:
        return _read_page(root, namespace, PAGE_NAMESPACES[namespace], path)
    if namespace in ALTO_NAMESPACES:
        return _read_alto(root, namespace, ALTO_NAMESPACES[namespace], path)
    raise UnknownXmlFormatError(
        f"{path}: root <{etree.QName(root).localname}> in namespace {namespace!r} is neither PAGE "
        f"({', '.join(PAGE_NAMESPACES)}) nor ALTO ({', '.join(ALTO_NAMESPACES)})"
    )


def parse_points(text: str | None) -> tuple[Point, ...] | None:
    """``"x,y x,y ..."`` (PAGE) or ``"x y x y ..."`` / ``"x,y x,y"`` (ALTO) as points; ``None`` if absent."""
    if not text or not text.strip():
        return None
    numbers = [float(value) for value in text.replace(",", " ").split()]
    if len(numbers) < 2 or len(numbers) % 2:
        raise ValueError(f"expected an even number of coordinates, got {len(numbers)}: {text[:60]!r}")
    return tuple(zip(numbers[0::2], numbers[1::2], strict=True))


# ---------------------------------------------------------------------------------------------------- PAGE


def _read_page(root: etree._Element, namespace: str, xml_format: str, path: Path) -> PageLayout:
    ns = {"p": namespace}
    page = root.find("p:Page", ns)
    if page is None:
        raise XmlParseError(f"{path}: a PAGE file without a <Page> element")
    region_rank = _page_region_order(page, ns)
    ordered: list[tuple[tuple[int, int, int, int], XmlLine]] = []
    for document_index, line in enumerate(page.iter(f"{{{namespace}}}TextLine")):
        region = _enclosing_region(line)
        region_id = region.get("id") if region is not None else None
        line_rank = _transkribus_index(line.get("custom"))
        region_key = region_rank.get(
            region_id, _transkribus_index(region.get("custom") if region is not None else None)
        )
        key = (
            region_key if region_key is not None else len(region_rank),
            0 if line_rank is not None else 1,
            line_rank if line_rank is not None else 0,
            document_index,
        )
        ordered.append(
            (
                key,
                XmlLine(
                    line_id=line.get("id") or f"line_{document_index}",
                    polygon=_points_or_error(line.find("p:Coords", ns), "points", path, line),
                    baseline=_points_or_error(line.find("p:Baseline", ns), "points", path, line),
                    text=_page_line_text(line, ns),
                    region_id=region_id,
                    region_type=region.get("type") if region is not None else None,
                    reading_order=0,
                ),
            )
        )
    lines = [_with_order(line, order) for order, (_, line) in enumerate(sorted(ordered, key=lambda item: item[0]))]
    return PageLayout(xml_format, page.get("imageFilename"), _size(page, "imageWidth", "imageHeight"), tuple(lines))


def _page_region_order(page: etree._Element, ns: dict[str, str]) -> dict[str, int]:
    """Region id -> rank in ``ReadingOrder`` (indexed references by index, others in document order)."""
    order = page.find("p:ReadingOrder", ns)
    if order is None:
        return {}
    references = []
    for position, reference in enumerate(order.iter("{*}RegionRefIndexed", "{*}RegionRef")):
        if reference.get("regionRef"):
            index = reference.get("index")
            references.append((int(index) if index is not None else position, position, reference.get("regionRef")))
    return {region: rank for rank, (_, _, region) in enumerate(sorted(references))}


def _enclosing_region(line: etree._Element) -> etree._Element | None:
    parent = line.getparent()
    while parent is not None and not etree.QName(parent).localname.endswith("Region"):
        parent = parent.getparent()
    return parent


def _transkribus_index(custom: str | None) -> int | None:
    match = _TRANSKRIBUS_READING_ORDER.search(custom or "")
    return int(match.group(1)) if match else None


def _page_line_text(line: etree._Element, ns: dict[str, str]) -> str:
    """Line-level ``TextEquiv`` (index 0, else the first); words joined by spaces when only they have text."""
    text = _text_equiv(line, ns)
    if text.strip():
        return text
    return " ".join(word_text for word in line.findall("p:Word", ns) if (word_text := _text_equiv(word, ns)).strip())


def _text_equiv(element: etree._Element, ns: dict[str, str]) -> str:
    equivalents = element.findall("p:TextEquiv", ns)
    if not equivalents:
        return ""
    chosen = next((equiv for equiv in equivalents if equiv.get("index") == "0"), equivalents[0])
    unicode = chosen.find("p:Unicode", ns)
    return unicode.text or "" if unicode is not None else ""


# ---------------------------------------------------------------------------------------------------- ALTO


def _read_alto(root: etree._Element, namespace: str, xml_format: str, path: Path) -> PageLayout:
    ns = {"a": namespace}
    unit = root.findtext("a:Description/a:MeasurementUnit", default="pixel", namespaces=ns).strip()
    if unit != "pixel":
        raise XmlParseError(f"{path}: MeasurementUnit {unit!r}; only pixel coordinates are read")
    page = root.find("a:Layout/a:Page", ns)
    if page is None:
        raise XmlParseError(f"{path}: an ALTO file without Layout/Page")
    tag_labels = {
        tag.get("ID"): tag.get("LABEL") or tag.get("TYPE")
        for tag in root.iterfind("a:Tags/*", ns)
        if tag.get("ID") is not None
    }
    lines = []
    for order, line in enumerate(page.iter(f"{{{namespace}}}TextLine")):
        block = line.getparent()
        while block is not None and etree.QName(block).localname != "TextBlock":
            block = block.getparent()
        lines.append(
            XmlLine(
                line_id=line.get("ID") or f"line_{order}",
                polygon=_alto_polygon(line, ns, path),
                baseline=_alto_baseline(line, path),
                text=_alto_line_text(line),
                region_id=block.get("ID") if block is not None else None,
                region_type=_alto_block_type(block, tag_labels),
                reading_order=order,
            )
        )
    filename = root.findtext("a:Description/a:sourceImageInformation/a:fileName", namespaces=ns)
    return PageLayout(xml_format, filename.strip() if filename else None, _size(page, "WIDTH", "HEIGHT"), tuple(lines))


def _alto_polygon(line: etree._Element, ns: dict[str, str], path: Path) -> tuple[Point, ...] | None:
    polygon = _points_or_error(line.find("a:Shape/a:Polygon", ns), "POINTS", path, line)
    if polygon is not None:
        return polygon
    box = [line.get(name) for name in ("HPOS", "VPOS", "WIDTH", "HEIGHT")]
    if any(value is None for value in box):
        return None
    x, y, width, height = (float(value) for value in box)
    return ((x, y), (x + width, y), (x + width, y + height), (x, y + height))


def _alto_baseline(line: etree._Element, path: Path) -> tuple[Point, ...] | None:
    """ALTO 4 baselines are points; an older single number is a horizontal baseline at that height."""
    value = line.get("BASELINE")
    if value is None or not value.strip():
        return None
    if len(value.replace(",", " ").split()) == 1 and line.get("HPOS") and line.get("WIDTH"):
        x, width, y = float(line.get("HPOS")), float(line.get("WIDTH")), float(value)
        return ((x, y), (x + width, y))
    return _points_or_error(line, "BASELINE", path, line)


def _alto_line_text(line: etree._Element) -> str:
    """``String@CONTENT`` joined by a space (``SP`` or not); a ``HYP`` joins its string without one."""
    text = ""
    for child in line.iterchildren("{*}String", "{*}HYP"):
        name = etree.QName(child).localname
        if name == "String":
            text = f"{text} {child.get('CONTENT', '')}" if text else child.get("CONTENT", "")
        elif name == "HYP":
            text += child.get("CONTENT", "")
    return text


def _alto_block_type(block: etree._Element | None, tag_labels: dict[str, str | None]) -> str | None:
    if block is None:
        return None
    labels = [tag_labels.get(tag) for tag in (block.get("TAGREFS") or "").split()]
    return next((label for label in labels if label), None)


# ------------------------------------------------------------------------------------------------- shared


def _points_or_error(
    element: etree._Element | None, attribute: str, path: Path, line: etree._Element
) -> tuple[Point, ...] | None:
    if element is None:
        return None
    try:
        return parse_points(element.get(attribute))
    except ValueError as error:
        raise XmlParseError(f"{path}:{line.sourceline}: {attribute} of a TextLine: {error}") from None


def _size(element: etree._Element, width_attribute: str, height_attribute: str) -> tuple[int, int] | None:
    width, height = element.get(width_attribute), element.get(height_attribute)
    if not width or not height:
        return None
    try:
        size = round(float(width)), round(float(height))
    except ValueError:
        return None
    return size if size[0] > 0 and size[1] > 0 else None


def _with_order(line: XmlLine, order: int) -> XmlLine:
    return XmlLine(**{**line.__dict__, "reading_order": order})
