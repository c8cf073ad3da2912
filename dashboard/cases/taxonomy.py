"""The case taxonomy (大类 / 小类), read from ``data/taxonomy.yaml`` and checked at start.

A file with a mistake is refused with ``file:line: what`` (``TaxonomyError``): an unknown
tier, a bad deadline, a repeated code or key, an unknown key, a unit type that does not exist
or is of another tier. ``Taxonomy.legacy_categories()`` is the shape ``dashboard.domain``
has always exposed as ``CATEGORIES``, so code written against it keeps working.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import yaml

from .yamlfile import FileError, Reader, compose

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "taxonomy.yaml"
TIERS = (1, 2, 3)  # 三级办理: 1 district departments, 2 street/town, 3 community/village
DEADLINE_KINDS = ("natural_hours", "working_hours", "working_days")
MAX_AMOUNT = {"natural_hours": 24 * 366, "working_hours": 8 * 250, "working_days": 250}  # a year
CODE = re.compile(r"^[a-z][a-z0-9_]{0,47}$")  # the feed's subcategory is at most 48 characters


class TaxonomyError(FileError):
    """The taxonomy file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Deadline:
    """A handling allowance: ``amount`` natural hours, working hours or working days."""

    kind: str
    amount: float

    @property
    def working(self) -> bool:
        return self.kind != "natural_hours"

    @property
    def nominal_hours(self) -> float:
        """Hours as the pre-calendar code counted them (plain hours): natural and working hours
        as given, a working day as 24. Only for ``legacy_categories``."""
        return self.amount * 24 if self.kind == "working_days" else self.amount


@dataclass(frozen=True)
class UnitType:
    code: str
    zh: str
    en: str
    tier: int


@dataclass(frozen=True)
class Subcategory:
    code: str
    category: str
    zh: str
    en: str
    tier: int
    unit_type: str
    deadline: Deadline
    urgent: bool
    line: int = 0


@dataclass(frozen=True)
class Category:
    code: str
    zh: str
    en: str
    tier: int
    unit_type: str
    deadline: Deadline
    urgent: bool
    subcategories: dict[str, Subcategory] = field(default_factory=dict)
    line: int = 0


@dataclass(frozen=True)
class Taxonomy:
    path: str
    unit_types: dict[str, UnitType]
    categories: dict[str, Category]

    def __post_init__(self):
        subs = {s.code: s for c in self.categories.values() for s in c.subcategories.values()}
        object.__setattr__(self, "_subs", subs)

    def subcategory(self, code: str) -> Subcategory | None:
        """A subcategory by its code (codes are unique across categories)."""
        return self._subs.get(code)

    def rule(self, category: str, subcategory: str | None = None) -> Subcategory | Category:
        """The entry a case of this kind follows: its subcategory when known, else its category."""
        cat = self.categories[category]
        if subcategory is not None and subcategory in cat.subcategories:
            return cat.subcategories[subcategory]
        return cat

    def legacy_categories(self) -> dict:
        """``{code: (zh, en, tier, hours, {sub: (zh, en)})}``: domain.CATEGORIES' shape."""
        out = {}
        for c in self.categories.values():
            hours = c.deadline.nominal_hours
            hours = int(hours) if float(hours).is_integer() else hours
            out[c.code] = (c.zh, c.en, c.tier, hours, {s.code: (s.zh, s.en) for s in c.subcategories.values()})
        return out


_UNIT_KEYS = ("code", "zh", "en", "tier")
_CAT_REQUIRED = ("code", "zh", "en", "tier", "unit_type", "deadline", "subcategories")
_SUB_REQUIRED = ("code", "zh", "en")
_OPTIONAL = ("tier", "unit_type", "deadline", "urgent")


class _Parser(Reader):
    def fail(self, node, message):  # type: ignore[override]
        err = super().fail(node, message)
        return TaxonomyError(err.path, err.line, err.problem)

    def code(self, node, what):
        value = self.text(node, what)
        if not CODE.match(value):
            raise self.fail(node, f"{what} {value!r} must be lower case a-z, 0-9 and _, starting with a letter, "
                                  "at most 48 characters")
        return value

    def tier(self, node, what):
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int" and node.value in ("1", "2", "3"):
            return int(node.value)
        shown = node.value if isinstance(node, yaml.ScalarNode) else "a list or mapping"
        raise self.fail(node, f"{what}: unknown tier {shown!r} (tiers are 1 district, 2 street, 3 community)")

    def deadline(self, node, what) -> Deadline:
        if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
            raise self.fail(node, f"{what}: a deadline is exactly one of "
                                  + ", ".join(f"{{{k}: N}}" for k in DEADLINE_KINDS))
        key, value = node.value[0]
        kind = key.value if isinstance(key, yaml.ScalarNode) else None
        if kind not in DEADLINE_KINDS:
            raise self.fail(key, f"{what}: unknown deadline kind {kind!r} (one of {', '.join(DEADLINE_KINDS)})")
        amount = self.number(value, f"{what}: {kind}")
        if kind == "working_days" and not float(amount).is_integer():
            raise self.fail(value, f"{what}: working_days must be a whole number of days, not {value.value}")
        if not 0 < amount <= MAX_AMOUNT[kind]:
            raise self.fail(value, f"{what}: {kind} must be more than 0 and at most {MAX_AMOUNT[kind]}, not {value.value}")
        return Deadline(kind, int(amount) if float(amount).is_integer() else amount)


def parse(path: Path | str, text: str | None = None) -> Taxonomy:
    p = _Parser(path)
    root = compose(path, text, TaxonomyError)
    if root is None:
        raise TaxonomyError(path, None, "the file is empty")
    top = p.mapping(root, "the file", required=("unit_types", "categories"))
    units: dict[str, UnitType] = {}
    for node in p.sequence(top["unit_types"], "unit_types"):
        m = p.mapping(node, "a unit type", required=_UNIT_KEYS)
        code = p.code(m["code"], "unit type code")
        if code in units:
            raise p.fail(m["code"], f"unit type code {code!r} is given twice")
        units[code] = UnitType(code, p.text(m["zh"], "zh"), p.text(m["en"], "en"), p.tier(m["tier"], f"unit type {code}"))

    def unit_type(node, tier, what):
        code = p.code(node, f"{what}: unit_type")
        if code not in units:
            raise p.fail(node, f"{what}: unknown unit_type {code!r} (not in unit_types)")
        if units[code].tier != tier:
            raise p.fail(node, f"{what}: unit_type {code!r} is a tier-{units[code].tier} unit, "
                               f"but the tier here is {tier}")
        return code

    categories: dict[str, Category] = {}
    sub_seen: dict[str, int] = {}
    for node in p.sequence(top["categories"], "categories"):
        m = p.mapping(node, "a category", required=_CAT_REQUIRED, optional=("urgent",))
        code = p.code(m["code"], "category code")
        if code in categories:
            raise p.fail(m["code"], f"category code {code!r} is given twice (first on line {categories[code].line})")
        what = f"category {code}"
        tier = p.tier(m["tier"], what)
        cat_deadline = p.deadline(m["deadline"], what)
        cat_urgent = p.boolean(m["urgent"], f"{what}: urgent") if "urgent" in m else False
        cat_unit = unit_type(m["unit_type"], tier, what)
        subs: dict[str, Subcategory] = {}
        sub_nodes = p.sequence(m["subcategories"], f"{what}: subcategories")
        if not sub_nodes:
            raise p.fail(m["subcategories"], f"{what}: needs at least one subcategory")
        for sn in sub_nodes:
            s = p.mapping(sn, "a subcategory", required=_SUB_REQUIRED, optional=_OPTIONAL)
            scode = p.code(s["code"], "subcategory code")
            if scode in sub_seen:
                raise p.fail(s["code"], f"subcategory code {scode!r} is given twice (first on line {sub_seen[scode]})")
            sub_seen[scode] = s["code"].start_mark.line + 1
            swhat = f"subcategory {scode}"
            stier = p.tier(s["tier"], swhat) if "tier" in s else tier
            if "unit_type" in s:
                sunit = unit_type(s["unit_type"], stier, swhat)
            elif stier == tier:
                sunit = cat_unit
            else:
                raise p.fail(sn, f"{swhat}: its tier {stier} differs from its category's, so it needs its own unit_type")
            subs[scode] = Subcategory(
                scode, code, p.text(s["zh"], "zh"), p.text(s["en"], "en"), stier, sunit,
                p.deadline(s["deadline"], swhat) if "deadline" in s else cat_deadline,
                p.boolean(s["urgent"], f"{swhat}: urgent") if "urgent" in s else cat_urgent,
                sub_seen[scode])
        categories[code] = Category(code, p.text(m["zh"], "zh"), p.text(m["en"], "en"), tier, cat_unit,
                                    cat_deadline, cat_urgent, subs, m["code"].start_mark.line + 1)
    if not categories:
        raise p.fail(top["categories"], "categories: the list is empty")
    return Taxonomy(str(path), units, categories)


@lru_cache(maxsize=4)
def load(path: Path | str = DEFAULT_PATH) -> Taxonomy:
    """The taxonomy from ``path`` (the repository's data/taxonomy.yaml by default), read once."""
    return parse(path)
