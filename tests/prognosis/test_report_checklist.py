"""The report's TRIPOD+AI checklist: all 27 items, each pointing to a section the report has or saying
'not addressed'."""

from __future__ import annotations

import re

from prognosis.report import SECTIONS, TRIPOD_AI_ITEMS, tripod_section


def test_every_tripod_ai_item_points_to_a_real_section_or_says_not_addressed() -> None:
    numbers = {int(re.match(r"\d+", item).group()) for item, *_ in TRIPOD_AI_ITEMS}
    assert numbers == set(range(1, 28))
    anchors = dict(SECTIONS)
    for item, _, anchor, what in TRIPOD_AI_ITEMS:
        assert anchor is None or anchor in anchors, item
        assert (anchor is None) == what.startswith("Not addressed"), item
    text = tripod_section()
    assert text.count("<tr>") == len(TRIPOD_AI_ITEMS)  # one body row per item (the header row has a style)
    assert all(f"href='#{a}'" in text for a in {a for _, _, a, _ in TRIPOD_AI_ITEMS if a})
    assert text.count(">not addressed<") == sum(a is None for _, _, a, _ in TRIPOD_AI_ITEMS)
