"""Which handling unit takes a case (三级办理), and whether a dispatch to a unit is allowed.

``Register`` is the store's ``handling_unit`` table in memory (load it once, cache it, reload
when units change). ``route`` picks the unit a case of a tier, kind, source and place goes to;
``check_dispatch`` says why a dispatch to a given unit is refused (the dead-letter reason) or
None. The choice of unit *type* is data: ``data/routing.yaml`` (per-line rules for 12345 and
110-diverted cases, the unit type at tiers the taxonomy does not name, each tier's default),
checked when first read with ``file:line: what`` like the taxonomy. docs/cases.md, "Handling
units and routing", states the rules.

A unit serves an area (its ``region_code``: a community, a street, the district); region codes
are fixed-width prefixes of their descendants' (dashboard.store.scope), so "the unit serves
the case's grid" is ``grid_code.startswith(unit.region_code)``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Mapping

import yaml

from . import taxonomy as tx
from .yamlfile import FileError, Reader, compose

DEFAULT_PATH = Path(__file__).resolve().parents[2] / "data" / "routing.yaml"
TIERS = tx.TIERS
TIER_NAMES = {3: "community", 2: "street", 1: "district"}


class RoutingError(FileError):
    """The routing file cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class Unit:
    code: str
    name_zh: str
    name_en: str
    tier: int
    unit_type: str
    region_code: str
    parent_code: str | None = None
    active: bool = True

    def serves(self, grid_code: str) -> bool:
        return grid_code.startswith(self.region_code)


@dataclass(frozen=True)
class SourceRule:
    category: str
    subcategory: str | None
    at: Mapping[int, str]
    line: int = 0

    def matches(self, category: str, subcategory: str | None) -> bool:
        return self.category == category and (self.subcategory is None or self.subcategory == subcategory)


@dataclass(frozen=True)
class Rules:
    path: str
    defaults: Mapping[int, str]                                  # tier -> unit_type
    kinds: Mapping[str, Mapping[int, str]]                       # "cat" / "cat.sub" -> tier -> unit_type
    sources: Mapping[str, tuple[SourceRule, ...]] = field(default_factory=dict)
    taxonomy: tx.Taxonomy | None = None

    def unit_type(self, level: int, category: str, subcategory: str | None, source: str) -> str | None:
        """The type of unit a tier-``level`` case of this kind and source goes to (None: unknown kind)."""
        for rule in self.sources.get(source, ()):
            if rule.matches(category, subcategory) and level in rule.at:
                return rule.at[level]
        tax = self.taxonomy or tx.load()
        if category not in tax.categories:
            return None
        entry = tax.rule(category, subcategory)
        if entry.tier == level:
            return entry.unit_type
        if subcategory is not None and level in self.kinds.get(f"{category}.{subcategory}", {}):
            return self.kinds[f"{category}.{subcategory}"][level]
        if level in self.kinds.get(category, {}):
            return self.kinds[category][level]
        cat = tax.categories[category]
        if cat.tier == level:  # a subcategory moved to another tier: its category's unit here
            return cat.unit_type
        return self.defaults.get(level)


class Register:
    """The handling units, by tier and type (a snapshot: the caller caches and reloads it)."""

    def __init__(self, units: Iterable[Unit], rules: Rules | None = None):
        self.units: dict[str, Unit] = {u.code: u for u in units}
        self.rules = rules or load_rules()
        # (tier, unit_type) -> active units, the most specific area first, then by code: the
        # first that serves a grid is the nearest one, and the choice is the same on every worker
        by: dict[tuple[int, str], list[Unit]] = {}
        for u in self.units.values():
            if u.active:
                by.setdefault((u.tier, u.unit_type), []).append(u)
        for lst in by.values():
            lst.sort(key=lambda u: (-len(u.region_code), u.code))
        self._by = by

    @classmethod
    def load(cls, conn, rules: Rules | None = None) -> "Register":
        from sqlalchemy import select

        from ..store.schema import handling_unit as t

        rows = conn.execute(select(t.c.code, t.c.name_zh, t.c.name_en, t.c.tier, t.c.unit_type,
                                   t.c.region_code, t.c.parent_code, t.c.active)).all()
        return cls((Unit(r.code, r.name_zh, r.name_en, int(r.tier), r.unit_type, r.region_code,
                         r.parent_code, bool(r.active)) for r in rows), rules)

    def get(self, code: str) -> Unit | None:
        return self.units.get(code)

    def __len__(self) -> int:
        return len(self.units)

    def candidates(self, tier: int, unit_type: str, grid_code: str, exclude: tuple[str, ...] = ()) -> list[Unit]:
        return [u for u in self._by.get((tier, unit_type), ())
                if u.serves(grid_code) and u.code not in exclude]


def route(register: Register, *, level: int, category: str, subcategory: str | None, source: str,
          grid_code: str, exclude: tuple[str, ...] = ()) -> str | None:
    """The code of the unit a tier-``level`` case of this kind, source and grid goes to; None when
    the register has none there. ``exclude``: units that sent the case back (回退), passed over.

    The unit type comes from the rules (``Rules.unit_type``); when the case's area has no unit of
    that type (left or all excluded), the tier's default unit there (the community committee, the
    street office) takes it, as a 回退 case goes back to the street office to be re-dispatched."""
    if level not in TIERS:
        return None
    rules = register.rules
    wanted = rules.unit_type(level, category, subcategory, source)
    if wanted is None:  # a kind the taxonomy does not know
        return None
    for unit_type in dict.fromkeys(t for t in (wanted, rules.defaults.get(level)) if t):
        found = register.candidates(level, unit_type, grid_code, exclude)
        if found:
            return found[0].code
    return None


def check_dispatch(register: Register, unit_code: str, *, level: int, grid_code: str) -> str | None:
    """None when unit ``unit_code`` may take a tier-``level`` case in ``grid_code``; else why not
    (the dead-letter reason: it names the unit, its tier or area, and the case's)."""
    unit = register.get(unit_code)
    if unit is None:
        return f"unit {unit_code} is not in the register of handling units"
    if not unit.active:
        return f"unit {unit_code} is not active"
    if unit.tier != level:
        return f"unit {unit_code} is tier {unit.tier}, the case is tier {level}"
    if not unit.serves(grid_code):
        return f"unit {unit_code} serves {unit.region_code}, not the case's grid {grid_code}"
    return None


# --- data/routing.yaml ----------------------------------------------------------------------------

class _Parser(Reader):
    def __init__(self, path, taxonomy: tx.Taxonomy):
        super().__init__(path)
        self.tax = taxonomy

    def fail(self, node, message):  # type: ignore[override]
        err = super().fail(node, message)
        return RoutingError(err.path, err.line, err.problem)

    def tier_key(self, node, what) -> int:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:int" and node.value in ("1", "2", "3"):
            return int(node.value)
        shown = node.value if isinstance(node, yaml.ScalarNode) else "a list or mapping"
        raise self.fail(node, f"{what}: unknown tier {shown!r} (tiers are 1 district, 2 street, 3 community)")

    def unit_type(self, node, tier: int, what) -> str:
        code = self.text(node, f"{what}: unit_type")
        ut = self.tax.unit_types.get(code)
        if ut is None:
            raise self.fail(node, f"{what}: unknown unit_type {code!r} (not in the taxonomy's unit_types)")
        if ut.tier != tier:
            raise self.fail(node, f"{what}: unit_type {code!r} is a tier-{ut.tier} unit, given for tier {tier}")
        return code

    def tier_map(self, node, what) -> dict[int, str]:
        out: dict[int, str] = {}
        for key, value in self.pairs(node, what):
            tier = self.tier_key(key, what)
            out[tier] = self.unit_type(value, tier, f"{what} at tier {tier}")
        if not out:
            raise self.fail(node, f"{what}: give at least one tier")
        return out

    def kind(self, cat_node, sub_node, what) -> tuple[str, str | None]:
        cat = self.text(cat_node, f"{what}: category")
        if cat not in self.tax.categories:
            raise self.fail(cat_node, f"{what}: unknown category {cat!r} (not in the taxonomy)")
        sub = None
        if sub_node is not None:
            sub = self.text(sub_node, f"{what}: subcategory")
            if sub not in self.tax.categories[cat].subcategories:
                raise self.fail(sub_node, f"{what}: subcategory {sub!r} is not one of category {cat!r}")
        return cat, sub


def parse_rules(path: Path | str, text: str | None = None, taxonomy: tx.Taxonomy | None = None) -> Rules:
    from ..domain import SOURCES

    tax = taxonomy or tx.load()
    p = _Parser(path, tax)
    root = compose(path, text, RoutingError)
    if root is None:
        raise RoutingError(path, None, "the file is empty")
    top = p.mapping(root, "the file", required=("defaults",), optional=("kinds", "sources"))
    defaults = p.tier_map(top["defaults"], "defaults")
    kinds: dict[str, dict[int, str]] = {}
    if "kinds" in top:
        for key, value in p.pairs(top["kinds"], "kinds"):
            name = p.text(key, "a kind")
            cat, _, sub = name.partition(".")
            if cat not in tax.categories:
                raise p.fail(key, f"kind {name}: unknown category {cat!r} (not in the taxonomy)")
            if sub and sub not in tax.categories[cat].subcategories:
                raise p.fail(key, f"kind {name}: subcategory {sub!r} is not one of category {cat!r}")
            kinds[name] = p.tier_map(value, f"kind {name}")
    sources: dict[str, tuple[SourceRule, ...]] = {}
    if "sources" in top:
        for key, value in p.pairs(top["sources"], "sources"):
            source = p.text(key, "a source")
            if source not in SOURCES:
                raise p.fail(key, f"unknown source {source!r} (one of {', '.join(SOURCES)})")
            rules = []
            for node in p.sequence(value, f"source {source}"):
                m = p.mapping(node, f"a rule of source {source}", required=("category", "at"),
                              optional=("subcategory",))
                what = f"source {source}"
                cat, sub = p.kind(m["category"], m.get("subcategory"), what)
                rules.append(SourceRule(cat, sub, p.tier_map(m["at"], f"{what} rule {cat}{'.' + sub if sub else ''}"),
                                        node.start_mark.line + 1))
            sources[source] = tuple(rules)
    rules = Rules(str(path), defaults, kinds, sources, tax)
    # every kind must lead somewhere at every tier, or an escalation would find no unit type
    for cat in tax.categories.values():
        for sub in (None, *cat.subcategories):
            for tier in TIERS:
                if rules.unit_type(tier, cat.code, sub, "grid_patrol") is None:
                    name = cat.code + (f".{sub}" if sub else "")
                    where = top["kinds"] if "kinds" in top else top["defaults"]
                    raise RoutingError(path, where.start_mark.line + 1,
                                       f"no unit type for {name} at tier {tier}: add it under kinds, or a "
                                       f"default for tier {tier}")
    return rules


@lru_cache(maxsize=4)
def load_rules(path: Path | str = DEFAULT_PATH) -> Rules:
    """The routing rules from ``path`` (data/routing.yaml by default), read once."""
    return parse_rules(path)
