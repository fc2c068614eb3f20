"""Sweet Home 3D classes: the class of a furniture item from its English name, category and tags.

Classes come from the English item name (:func:`classify`), see :data:`CLASSES`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["CLASSES", "classify"]

#: The classes :func:`classify` assigns; ``other`` is everything else (vehicles, people, doors, small objects).
CLASSES = (
    "chair",
    "stool",
    "armchair_sofa",
    "bench",
    "table",
    "bed",
    "lamp",
    "cabinet_shelf",
    "plant",
    "sanitary",
    "appliance",
    "other",
)


def _words(*groups: tuple[str, str]) -> dict[str, str]:
    return {w: cls for cls, words in groups for w in words.split()}


#: Noun -> class. The class of a name is that of its right-most noun found here (the head noun in English:
#: "desk lamp" is a lamp, "sink cabinet" a cabinet). Nouns mapped to ``other`` stop the search, so that
#: "table fan" is not a table.
_NOUNS = _words(
    ("chair", "chair chairs seat lounge lounger highchair recliner"),
    ("stool", "stool stools puff pouf footstool ottoman"),
    ("armchair_sofa", "armchair armchairs sofa sofas couch couches loveseat settee"),
    ("bench", "bench benches bank"),  # "bank": Scopia's literal translation of the French "banc"
    ("table", "table tables desk desks workbench"),
    ("bed", "bed beds crib cot futon"),  # not "mattress": the only one is an inflatable pool float
    ("lamp", "lamp lamps light lights lamppost chandelier lantern spotlight sconce"),
    (
        "cabinet_shelf",
        "cabinet cabinets cupboard cupboards shelf shelves bookcase bookshelf wardrobe dresser drawers "
        "chest locker sideboard closet nightstand island",
    ),
    (
        "plant",
        "plant plants flower flowers tulips orchids lily cactus yucca spathiphyllum bamboo ficus bonsai tree "
        "bush hedge acacia pine beech cypress maple poplar palm blossom shrub fern succulent",
    ),
    (
        "sanitary",
        "toilet toilets wc sink bath bathtub shower washbasin basin lavatory bidet urinal vanity",
    ),
    (
        "appliance",
        "fridge refrigerator freezer oven microwave cooker cooktop hob stove dishwasher dryer hood heater "
        "furnace radiator tv television",  # not "boiler": Blend Swap's "Boiler" is a kettle
    ),
    ("other", "fan tennis remote flashlight candle candles brush dispenser door curtain potty"),
)

#: Phrases checked before the head noun, first match wins.
_PHRASES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"\b(pool|football|billiards?|ping pong) table\b"), "other"),
    (re.compile(r"\b(bedside|dressing|changing|night) table\b|\bnight ?stand\b|\btv stand\b"), "cabinet_shelf"),
    (re.compile(r"\babdominal bench\b|\bweight bench\b|\bstone lantern\b"), "other"),
    (re.compile(r"\barmchair\b"), "armchair_sofa"),  # "Armchair ottoman"
    (re.compile(r"\b(washing|dish ?washing) machine\b|\bair conditioning\b|\bwater heater\b"), "appliance"),
]
#: Categories whose items are never furniture of the classes above ("Seat Leon" is a car).
_OTHER_CATEGORIES = {"vehicles", "characters", "doors and windows", "staircases"}
_CUT = re.compile(r"\b(with|under|on|and|for|of|in)\b|[0-9]")


def classify(name: str, category: str = "", tags: Iterable[str] = ()) -> str:
    """The class of a furniture item from its English name, category and tags.

    Rules, in order: categories ``Vehicles``, ``Characters``, ``Doors and windows`` and ``Staircases`` are
    ``other``; a few phrases (:data:`_PHRASES`: "pool table" is ``other``, "bedside table" is
    ``cabinet_shelf``, anything with "armchair" is ``armchair_sofa``); then the right-most known noun
    of the name before any "with/under/on/and/..." or digit (the English head noun); then fall-backs:
    category ``Lights`` -> ``lamp``, tag ``Tree`` -> ``plant`` (both only when the name has no known noun).
    A chair tagged ``Armchair`` is an ``armchair_sofa``. Anything else is ``other``.

    Args:
        name: the item's English name, e.g. ``"Bar stool"``.
        category: its Sweet Home 3D category, e.g. ``"Kitchen"``.
        tags: its tags.

    Returns:
        one of :data:`CLASSES`.
    """
    if category.strip().lower() in _OTHER_CATEGORIES:
        return "other"
    text = " ".join(re.findall(r"[a-z]+|[0-9]+", name.lower().replace("'s", "")))
    tagset = {t.strip().lower() for t in tags}
    for pattern, cls in _PHRASES:
        if pattern.search(text):
            return cls
    head = _CUT.split(text, maxsplit=1)[0].split()
    for word in reversed(head):
        if word in _NOUNS:
            cls = _NOUNS[word]
            return "armchair_sofa" if cls == "chair" and "armchair" in tagset else cls
    words = set(text.split())
    if not words & set(_NOUNS) and category.strip().lower() == "lights":
        return "lamp"
    if not words & set(_NOUNS) and tagset & {"tree"}:
        return "plant"
    return "other"
