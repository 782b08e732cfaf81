"""Reading the text lines of a PAGE-XML or ALTO file: geometry, text, region and reading order.

The format is recognised per file by the namespace of its root element (PAGE 2010, 2013 and 2019; ALTO v2, v3
and v4). Parsed with lxml, never with regular expressions. Nothing here opens the page image: coordinates are
returned as the file states them, in the frame of the size the file declares.
"""

from __future__ import annotations

import math
import re
import typing
from collections import Counter
from dataclasses import dataclass, field
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
    entities: dict[str, int] = field(default_factory=dict)
    """``{"entity &eacute;": count}``: the file's own (internal) entities resolved in the line's text."""


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
    numbers = [finite_number(value) for value in text.replace(",", " ").split()]
    if len(numbers) < 2 or len(numbers) % 2:
        raise ValueError(f"expected an even number of coordinates, got {len(numbers)}: {text[:60]!r}")
    return tuple(zip(numbers[0::2], numbers[1::2], strict=True))


def finite_number(value: str) -> float:
    """A coordinate or size as the file writes it; ``inf``, ``nan``, ``20px`` or a word raise ``ValueError``."""
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number")
    return number


def _number_attribute(element: etree._Element, attribute: str, path: Path) -> float | None:
    value = element.get(attribute)
    if value is None:
        return None
    try:
        return finite_number(value)
    except ValueError:
        raise XmlParseError(
            f"{path}:{element.sourceline}: {etree.QName(element).localname}@{attribute} {value[:40]!r} is not a "
            "finite number"
        ) from None


# ---------------------------------------------------------------------------------------------------- PAGE


def _read_page(root: etree._Element, namespace: str, xml_format: str, path: Path) -> PageLayout:
    ns = {"p": namespace}
    page = root.find("p:Page", ns)
    if page is None:
        raise XmlParseError(f"{path}: a PAGE file without a <Page> element")
    region_rank = _page_region_order(page, ns, path)
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
        text, entities = _page_line_text(line, ns, path)
        ordered.append(
            (
                key,
                XmlLine(
                    line_id=line.get("id") or f"line_{document_index}",
                    polygon=_points_or_error(line.find("p:Coords", ns), "points", path, line),
                    baseline=_points_or_error(line.find("p:Baseline", ns), "points", path, line),
                    text=text,
                    region_id=region_id,
                    region_type=region.get("type") if region is not None else None,
                    reading_order=0,
                    entities=entities,
                ),
            )
        )
    lines = [_with_order(line, order) for order, (_, line) in enumerate(sorted(ordered, key=lambda item: item[0]))]
    return PageLayout(
        xml_format, page.get("imageFilename"), _size(page, "imageWidth", "imageHeight", path), tuple(lines)
    )


def _page_region_order(page: etree._Element, ns: dict[str, str], path: Path) -> dict[str, int]:
    """Region id -> rank in ``ReadingOrder`` (indexed references by index, others in document order)."""
    order = page.find("p:ReadingOrder", ns)
    if order is None:
        return {}
    references = []
    for position, reference in enumerate(order.iter("{*}RegionRefIndexed", "{*}RegionRef")):
        if reference.get("regionRef"):
            index = reference.get("index")
            if index is not None and not index.strip().lstrip("+-").isdigit():
                raise XmlParseError(
                    f"{path}:{reference.sourceline}: RegionRefIndexed@index {index[:40]!r} is not a whole number"
                )
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


def _page_line_text(line: etree._Element, ns: dict[str, str], path: Path) -> tuple[str, dict[str, int]]:
    """Line-level ``TextEquiv`` (index 0, else the first); words joined by spaces when only they have text. With
    the internal entities resolved in it, counted."""
    text, entities = _text_equiv(line, ns, path)
    if text.strip():
        return text, entities
    words = [_text_equiv(word, ns, path) for word in line.findall("p:Word", ns)]
    counts: Counter[str] = Counter()
    for _, word_entities in words:
        counts.update(word_entities)
    return " ".join(word_text for word_text, _ in words if word_text.strip()), dict(counts)


def _text_equiv(element: etree._Element, ns: dict[str, str], path: Path) -> tuple[str, dict[str, int]]:
    equivalents = element.findall("p:TextEquiv", ns)
    if not equivalents:
        return "", {}
    chosen = next((equiv for equiv in equivalents if equiv.get("index") == "0"), equivalents[0])
    unicode = chosen.find("p:Unicode", ns)
    return _text_with_entities(unicode, path) if unicode is not None else ("", {})


def _text_with_entities(element: etree._Element, path: Path) -> tuple[str, dict[str, int]]:
    """The element's text with the file's own entities resolved (``caf&eacute;`` -> ``café``, counted as
    ``entity &eacute;``). The parser resolves none (``resolve_entities=False``): an external or undeclared entity,
    or one whose value holds markup, is an error, never read."""
    parts, counts = [element.text or ""], Counter()
    declared = _internal_entities(element)
    for child in element:
        if child.tag is etree.Entity:
            name = child.text.strip("&;")
            if declared.get(name) is None:
                raise XmlParseError(
                    f"{path}:{element.sourceline}: entity &{name}; is an external or undeclared entity; only the "
                    "file's own plain-text entities are read (external entities are never resolved)"
                )
            parts.append(declared[name])
            counts[f"entity &{name};"] += 1
        parts.append(child.tail or "")
    return "".join(parts), dict(counts)


def _internal_entities(element: etree._Element) -> dict[str, str | None]:
    """``name -> value`` of the entities the file's internal DTD declares; ``None`` for an external one or one
    whose value holds markup or other entities."""
    dtd = element.getroottree().docinfo.internalDTD
    if dtd is None:
        return {}
    return {
        entity.name: entity.content
        if entity.system_url is None and entity.content is not None and not set("&<") & set(entity.content)
        else None
        for entity in dtd.iterentities()
    }


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
    return PageLayout(
        xml_format, filename.strip() if filename else None, _size(page, "WIDTH", "HEIGHT", path), tuple(lines)
    )


def _alto_polygon(line: etree._Element, ns: dict[str, str], path: Path) -> tuple[Point, ...] | None:
    polygon = _points_or_error(line.find("a:Shape/a:Polygon", ns), "POINTS", path, line)
    if polygon is not None:
        return polygon
    box = [_number_attribute(line, name, path) for name in ("HPOS", "VPOS", "WIDTH", "HEIGHT")]
    if any(value is None for value in box):
        return None
    x, y, width, height = typing.cast(list[float], box)
    return ((x, y), (x + width, y), (x + width, y + height), (x, y + height))


def _alto_baseline(line: etree._Element, path: Path) -> tuple[Point, ...] | None:
    """ALTO 4 baselines are points; an older single number is a horizontal baseline at that height."""
    value = line.get("BASELINE")
    if value is None or not value.strip():
        return None
    if len(value.replace(",", " ").split()) == 1 and line.get("HPOS") and line.get("WIDTH"):
        x, width, y = (_number_attribute(line, name, path) for name in ("HPOS", "WIDTH", "BASELINE"))
        assert x is not None and width is not None and y is not None
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


def _size(element: etree._Element, width_attribute: str, height_attribute: str, path: Path) -> tuple[int, int] | None:
    """The declared page size; ``None`` when absent or not positive; a value that is no finite number raises."""
    if not element.get(width_attribute) or not element.get(height_attribute):
        return None
    width, height = (_number_attribute(element, name, path) for name in (width_attribute, height_attribute))
    assert width is not None and height is not None
    size = round(width), round(height)
    return size if size[0] > 0 and size[1] > 0 else None


def _with_order(line: XmlLine, order: int) -> XmlLine:
    return XmlLine(**{**line.__dict__, "reading_order": order})
