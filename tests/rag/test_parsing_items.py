"""Item splitting on clean text: table of contents skipped, 10-Q parts, 8-K items, invariants."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quantdesk.rag.items import FORM_10K_ITEMS, FORM_10Q_ITEMS, find_items, split_items

_TOC_10K = "\n".join(
    ["TABLE OF CONTENTS", "Part I"]
    + [
        f"Item {key}. | {title} | {page}"
        for page, (key, title) in enumerate(FORM_10K_ITEMS.items())
    ]
)


def _body_10k(keys: list[str]) -> str:
    return "\n\n".join(
        f"ITEM {key}. {FORM_10K_ITEMS[key].upper()}\n\nBody of {key}." for key in keys
    )


def test_10k_table_of_contents_is_skipped_and_items_follow_the_body() -> None:
    text = "Cover page\n\n" + _TOC_10K + "\n\nPART I\n\n" + _body_10k(list(FORM_10K_ITEMS))
    sections = split_items(text, "10-K")
    assert [s.key for s in sections] == list(FORM_10K_ITEMS)
    for section in sections:
        assert section.text.startswith(f"ITEM {section.key}.")
        assert f"Body of {section.key}." in section.text
        assert section.text == text[section.start : section.end]
        assert section.title == FORM_10K_ITEMS[section.key]


def test_toc_without_page_numbers_is_recognised_as_a_crowded_table() -> None:
    toc = "\n".join(["Item 1. Business", "Item 1A. Risk Factors", "Item 2. Properties"])
    text = toc + "\n\n" + _body_10k(["1", "1A", "2"])
    sections = split_items(text, "10-K")
    assert [s.key for s in sections] == ["1", "1A", "2"]
    assert sections[0].text.startswith("ITEM 1. BUSINESS")


def test_heading_variants_are_recognised() -> None:
    text = "\n\n".join(
        [
            "ITEM 1.BUSINESS",
            "text",
            "Item 1A | Risk Factors",
            "text",
            "Item 2: Properties",
            "text",
            "Item 3 \u2014 Legal Proceedings",
            "text",
        ]
    )
    assert [s.key for s in split_items(text, "10-K")] == ["1", "1A", "2", "3"]


def test_cross_reference_lines_and_nonstandard_items_do_not_split() -> None:
    text = "\n\n".join(
        [
            "Item 4. Mine Safety Disclosures",
            "Not applicable.",
            "ITEM X. INFORMATION ABOUT OUR EXECUTIVE OFFICERS",
            "Jane Doe, 52.",
            "ITEM 15(a)(3) exhibits listed below",
            "Item 5. Market for Registrant's Common Equity",
            "See Item 7 for more.",
        ]
    )
    sections = split_items(text, "10-K")
    assert [s.key for s in sections] == ["4", "5"]
    assert "Jane Doe" in sections[0].text


def test_10q_parts_come_from_part_headings() -> None:
    toc = "\n".join(
        [
            "PART I",
            "Item 1. | Financial Statements | 1",
            "Item 2. | MD&A | 9",
            "PART II",
            "Item 1. | Legal Proceedings | 20",
            "Item 1A. | Risk Factors | 20",
        ]
    )
    body = "\n\n".join(
        [
            "PART I \u2014 FINANCIAL INFORMATION",
            "Item 1. Financial Statements",
            "Balance sheet",
            "Item 2. Management's Discussion and Analysis",
            "Results",
            "PART II \u2014 OTHER INFORMATION",
            "Item 1. Legal Proceedings",
            "Lawsuits",
            "Item 1A. Risk Factors",
            "Risks",
            "Item 6. Exhibits",
            "31.1",
        ]
    )
    sections = split_items(toc + "\n\n" + body, "10-Q")
    assert [s.key for s in sections] == ["I-1", "I-2", "II-1", "II-1A", "II-6"]
    assert [s.title for s in sections][2] == FORM_10Q_ITEMS["II-1"]
    # An Item runs to the next Item heading: the PART II line closes Item 2's text.
    assert sections[1].text.endswith("PART II \u2014 OTHER INFORMATION")


def test_10q_without_part_headings_infers_part_two_from_restarted_numbering() -> None:
    text = "\n\n".join(
        [
            "Item 1. Financial Statements",
            "a",
            "Item 2. MD&A",
            "b",
            "Item 4. Controls",
            "c",
            "Item 1. Legal Proceedings",
            "d",
            "Item 5. Other Information",
            "e",
        ]
    )
    assert [s.key for s in split_items(text, "10-Q")] == ["I-1", "I-2", "I-4", "II-1", "II-5"]


def test_8k_items_use_their_decimal_numbers() -> None:
    text = "\n\n".join(
        [
            "FORM 8-K",
            "Item 2.02 | Results of Operations and Financial Condition.",
            "Q3 results",
            "Item 9.01 Financial Statements and Exhibits.",
            "(d) Exhibits",
        ]
    )
    sections = split_items(text, "8-K")
    assert [(s.key, s.title) for s in sections] == [
        ("2.02", "Results of Operations and Financial Condition"),
        ("9.01", "Financial Statements and Exhibits"),
    ]


@pytest.mark.parametrize("form", ["S-1", "DEF 14A", "", "425"])
def test_forms_without_items_give_no_sections(form: str) -> None:
    assert split_items(_body_10k(["1", "2"]), form) == ()


def test_amendments_split_like_the_original_form() -> None:
    assert [s.key for s in split_items(_body_10k(["1", "7"]), "10-K/A")] == ["1", "7"]


@settings(max_examples=60, deadline=None)
@given(
    keys=st.lists(st.sampled_from(list(FORM_10K_ITEMS)), min_size=1, max_size=12, unique=True),
    with_toc=st.booleans(),
)
def test_sections_are_ordered_disjoint_and_cover_every_present_item(
    keys: list[str], with_toc: bool
) -> None:
    ordered = [k for k in FORM_10K_ITEMS if k in keys]
    text = (_TOC_10K + "\n\n" if with_toc else "") + _body_10k(ordered)
    boundaries = find_items(text, "10-K")
    assert [b.key for b in boundaries] == ordered
    for left, right in itertools.pairwise(boundaries):
        assert left.start < left.end <= right.start
    assert boundaries[-1].end == len(text)


def test_8k_items_with_close_numbers_keep_their_order() -> None:
    keys = ["5.02", "5.03", "5.07", "7.01", "9.01"]
    text = "\n\n".join(f"Item {key} Heading\n\nbody {key}" for key in keys)
    assert [s.key for s in split_items(text, "8-K")] == keys
