"""The common label map: corpus labels -> a shared set of classes, for evaluation across corpora.

A model trained on one corpus and tested on another (``metaser evaluate`` / ``metaser cross``)
needs one label space. A label map is a YAML mapping ``corpus label -> common label``::

    # my_map.yaml
    anger: ang
    wut: ang
    happiness: hap
    neutral: neu
    sadness: sad
    boredom: null        # listed but dropped on purpose (same as leaving it out)

Keys are matched case-insensitively (and with surrounding / repeated spaces ignored); a label
that the map does not list, or lists with ``null``, is **dropped** and counted, never guessed.

:func:`default_label_map` is the map used when none is given: the four classes of the paper's
IEMOCAP protocol, ``neu`` / ``hap`` / ``ang`` / ``sad``, matched by name:

* ``neutral``, ``neutral state``, ``neu`` -> ``neu``
* ``happiness``, ``happy``, ``joy``, ``hap`` -> ``hap``
* ``anger``, ``angry``, ``ang`` -> ``ang``
* ``sadness``, ``sad`` -> ``sad``

**Excited is not happiness by default.** IEMOCAP's 4-class protocol merges ``exc`` into ``hap``
(the IEMOCAP recipe already does so when it prepares the corpus, keeping ``emotion_raw:
exc``), but for other corpora "excited" is its own category, so the default map drops it;
``default_label_map(merge_excited=True)`` (or ``load_label_map("default+exc")``) adds
``excited`` / ``excitement`` / ``exc`` -> ``hap``.

API: :func:`load_label_map` (a file, ``"default"``, ``"default+exc"`` or ``None``),
:meth:`LabelMap.map` (one label -> common label or None), :meth:`LabelMap.map_labels` (a
list of labels) and :meth:`LabelMap.map_cuts` (a CutSet / list of cuts) returning a
:class:`MappedLabels`: the kept items, their common labels and a ``Counter`` of the dropped
raw labels. Bad files raise :class:`~metaser.errors.ConfigError` naming the file (and line).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metaser.data.manifest import EMOTION, get_field
from metaser.errors import ConfigError

__all__ = [
    "COMMON_LABELS",
    "DEFAULT_ALIASES",
    "EXCITED_ALIASES",
    "LabelMap",
    "MappedLabels",
    "default_label_map",
    "load_label_map",
    "normalize_label",
]

#: the paper's four classes, in the order reports list them
COMMON_LABELS: tuple[str, ...] = ("neu", "hap", "ang", "sad")

#: common label -> the names that map to it by default (compared after :func:`normalize_label`)
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "neu": ("neutral", "neutral state", "neu"),
    "hap": ("happiness", "happy", "joy", "hap"),
    "ang": ("anger", "angry", "ang"),
    "sad": ("sadness", "sad"),
}
#: added to ``hap`` only on request (IEMOCAP's merge)
EXCITED_ALIASES: tuple[str, ...] = ("excited", "excitement", "exc")

_BUILTIN = {"default": False, "default+exc": True}


def normalize_label(label: Any) -> str:
    """The form labels are compared in: ``str``, case-folded, spaces squeezed and stripped."""
    return re.sub(r"\s+", " ", str(label)).strip().casefold()


@dataclass
class MappedLabels:
    """The result of mapping many labels: what was kept, as what, and what was dropped.

    kept: the kept items (cuts or labels, in their input order); labels: the common label of
    each kept item; dropped: raw label -> how many items carried it and were dropped.
    """

    kept: list[Any] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)

    @property
    def num_dropped(self) -> int:
        return sum(self.dropped.values())


@dataclass(frozen=True)
class LabelMap:
    """``corpus label -> common label`` (keys normalised by :func:`normalize_label`).

    mapping: normalised corpus label -> common label, or None for "listed, dropped on purpose".
    source: where the map came from (a path, ``"default"``...), for messages and reports.
    """

    mapping: dict[str, str | None]
    source: str = "default"

    @property
    def targets(self) -> list[str]:
        """The common labels, :data:`COMMON_LABELS` order first, then any others sorted."""
        found = {v for v in self.mapping.values() if v is not None}
        return [c for c in COMMON_LABELS if c in found] + sorted(found - set(COMMON_LABELS))

    def map(self, label: Any) -> str | None:
        """The common label of ``label``, or None when the map drops it (or ``label`` is None)."""
        if label is None:
            return None
        return self.mapping.get(normalize_label(label))

    def map_labels(self, labels: Iterable[Any]) -> MappedLabels:
        """Map a list of labels: ``kept`` holds the kept raw labels, ``labels`` their common ones."""
        out = MappedLabels()
        for raw in labels:
            common = self.map(raw)
            if common is None:
                out.dropped[str(raw)] += 1
            else:
                out.kept.append(raw)
                out.labels.append(common)
        return out

    def map_cuts(self, cuts: Iterable[Any], field_name: str = EMOTION) -> MappedLabels:
        """Map the ``field_name`` (default ``emotion``) of each cut; ``kept`` holds the cuts
        (unchanged), ``labels`` their common labels; a cut without the field counts as dropped
        under ``"<none>"``."""
        out = MappedLabels()
        for cut in cuts:
            raw = get_field(cut, field_name)
            common = self.map(raw)
            if common is None:
                out.dropped["<none>" if raw is None else str(raw)] += 1
            else:
                out.kept.append(cut)
                out.labels.append(common)
        return out

    def to_yaml_dict(self) -> dict[str, str | None]:
        """The mapping as written to a YAML file (normalised keys, sorted)."""
        return dict(sorted(self.mapping.items()))


def default_label_map(*, merge_excited: bool = False) -> LabelMap:
    """The built-in map to ``neu`` / ``hap`` / ``ang`` / ``sad`` (see the module docstring)."""
    mapping: dict[str, str | None] = {}
    for common, aliases in DEFAULT_ALIASES.items():
        for alias in aliases:
            mapping[normalize_label(alias)] = common
    if merge_excited:
        for alias in EXCITED_ALIASES:
            mapping[normalize_label(alias)] = "hap"
    return LabelMap(mapping, "default+exc" if merge_excited else "default")


def _yaml_error_line(e: Exception) -> str:
    mark = getattr(e, "problem_mark", None)
    return f" (line {mark.line + 1})" if mark is not None else ""


def load_label_map(source: str | Path | None = None, *, merge_excited: bool = False) -> LabelMap:
    """Load a label map: ``None`` / ``"default"`` / ``"default+exc"`` (built in) or a YAML file.

    merge_excited: with a built-in map, also map excited -> hap (``"default+exc"`` implies it).
    Raises ConfigError for a missing / unreadable file, invalid YAML, a top level that is not
    a mapping, empty or non-string keys, values that are not strings (or null), and two keys
    that differ only in case / spacing but map to different labels.
    """
    if source is None or (isinstance(source, str) and source in _BUILTIN):
        merge = merge_excited or (source is not None and _BUILTIN[str(source)])
        return default_label_map(merge_excited=merge)
    import yaml

    path = Path(source)
    if not path.is_file():
        raise ConfigError(
            f"label map not found: {path}",
            hint="give a YAML file of 'corpus label: common label' lines, or 'default' / 'default+exc'",
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"label map {path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        raise ConfigError(
            f"label map {path}: not valid YAML{_yaml_error_line(e)}: {getattr(e, 'problem', None) or e}"
        ) from None
    if data is None:
        raise ConfigError(f"label map {path} is empty", hint="write one 'corpus label: common label' per line")
    if not isinstance(data, dict):
        raise ConfigError(
            f"label map {path}: the top level must be a mapping of corpus label -> "
            f"common label, got a {type(data).__name__}",
            hint="e.g. 'anger: ang' on one line, 'happiness: hap' on the next",
        )
    mapping: dict[str, str | None] = {}
    origin: dict[str, str] = {}
    for key, value in data.items():
        if isinstance(key, bool) or not isinstance(key, (str, int, float)) or not str(key).strip():
            raise ConfigError(f"label map {path}: key {key!r} is not a label name")
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise ConfigError(
                f"label map {path}: '{key}' maps to {value!r}; the common label must "
                f"be a non-empty string (or null to drop it)"
            )
        norm = normalize_label(key)
        target = value.strip() if isinstance(value, str) else None
        if norm in mapping and mapping[norm] != target:
            raise ConfigError(
                f"label map {path}: '{origin[norm]}' and '{key}' are the same label "
                f"(case and spaces are ignored) but map to {mapping[norm]!r} and "
                f"{target!r}"
            )
        mapping[norm] = target
        origin[norm] = str(key)
    if not any(v is not None for v in mapping.values()):
        raise ConfigError(f"label map {path}: every label maps to null, nothing would be kept")
    return LabelMap(mapping, str(path))
