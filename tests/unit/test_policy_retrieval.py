"""Policy retrieval: sections by stable id, search by area or BM25, staff-only lines kept out."""

from __future__ import annotations

import json
import math

import pytest

from mediavault.policies import policy_version
from mediavault.tools.policy_retrieval import (
    PolicyDocumentError,
    PolicyLibrary,
    default_policy_library,
    internal_policy_phrases,
    policy_tokens,
)

AREA_IDS = (
    "rentals",
    "late-fees",
    "lost-items",
    "waivers-refunds",
    "account",
    "privacy",
    "escalation",
    "membership",
    "communication",
)

TINY_POLICY = """# Tiny policy

## Alpha {#alpha}
zebra zebra lion

## Beta {#beta}
lion tiger

## Gamma {#gamma}
tiger wolf bear
"""


@pytest.fixture(scope="module")
def library() -> PolicyLibrary:
    return default_policy_library()


def test_policy_areas_have_their_stable_ids(library: PolicyLibrary) -> None:
    areas = [section.id for section in library.sections() if section.is_area]
    assert tuple(areas) == AREA_IDS
    ids = [section.id for section in library.sections()]
    assert len(ids) == len(set(ids))


def test_subsection_carries_its_heading_path(library: PolicyLibrary) -> None:
    section = library.get("late-fees.computation")
    assert section.heading_path == ("Late fees", "How the fee is computed")
    assert section.title == "How the fee is computed"
    assert "$1.00 per started day" in section.text
    # The parent's text includes the subsection, with its heading but not its id marker.
    parent = library.get("late-fees")
    assert "### How the fee is computed\n" in parent.text
    assert "{#" not in parent.text


def test_unknown_section_id_names_the_valid_ones(library: PolicyLibrary) -> None:
    with pytest.raises(KeyError, match="late-fees"):
        library.get("late-fee-policy")


@pytest.mark.parametrize(
    ("area", "section_id"),
    [
        ("late_fees", "late-fees"),
        ("Late Fees", "late-fees"),
        ("refunds", "waivers-refunds"),
        ("privacy", "privacy"),
        ("account", "account"),
        ("escalation", "escalation"),
        ("communication", "communication"),
        ("lost_items", "lost-items"),
        ("membership", "membership"),
        ("account.email-change", "account.email-change"),
    ],
)
def test_search_by_area_returns_that_section(
    library: PolicyLibrary, area: str, section_id: str
) -> None:
    hits = library.search(policy_area=area)
    assert [hit.section_id for hit in hits] == [section_id]
    assert hits[0].matched_by == "area"
    assert hits[0].text == library.get(section_id).customer_text


def test_unknown_area_lists_the_valid_areas(library: PolicyLibrary) -> None:
    with pytest.raises(ValueError, match="unknown policy area 'parking'") as raised:
        library.search(policy_area="parking")
    message = str(raised.value)
    assert all(area in message for area in AREA_IDS)
    assert "refunds" in message  # aliases are listed too


@pytest.mark.parametrize(
    ("query", "section_id"),
    [
        ("late fee charged after returning a movie late", "late-fees"),
        ("delete my personal data", "privacy"),
        ("lawyer lawsuit", "escalation"),
        ("I was charged twice and want my money back", "waivers-refunds"),
        ("please change the email address on my account", "account"),
        ("the film has been out for weeks, is it lost?", "lost-items"),
        ("is a copy in stock at my home store", "membership"),
    ],
)
def test_bm25_ranks_the_matching_section_first(
    library: PolicyLibrary, query: str, section_id: str
) -> None:
    hits = library.search(query=query)
    assert hits[0].section_id == section_id
    assert hits[0].matched_by == "query"
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_area_and_query_together_put_the_area_first_without_repeating_it(
    library: PolicyLibrary,
) -> None:
    hits = library.search(policy_area="late_fees", query="late fee lost film", top_k=3)
    assert hits[0].section_id == "late-fees"
    assert hits[0].matched_by == "area"
    assert [hit.section_id for hit in hits[1:]] == ["lost-items", "rentals"]


def test_top_k_bounds_the_hits(library: PolicyLibrary) -> None:
    assert len(library.search(query="late fee", top_k=1)) == 1
    assert len(library.search(query="fee charge rental refund store", top_k=10)) > 3


@pytest.mark.parametrize("top_k", [0, 11, -1, True])
def test_top_k_out_of_range_is_refused(library: PolicyLibrary, top_k: int) -> None:
    with pytest.raises(ValueError, match="top_k must be a whole number from 1 to 10"):
        library.search(query="late fee", top_k=top_k)


@pytest.mark.parametrize("query", [None, "", "   \n\t"])
def test_blank_request_is_refused_with_a_clear_message(
    library: PolicyLibrary, query: str | None
) -> None:
    with pytest.raises(ValueError, match="needs a policy area or a non-empty query"):
        library.search(query=query)


def test_query_of_only_stop_words_is_refused(library: PolicyLibrary) -> None:
    with pytest.raises(ValueError, match="no searchable words"):
        library.search(query="what is this about?")


def test_query_sharing_no_word_with_the_policy_finds_nothing(library: PolicyLibrary) -> None:
    assert library.search(query="quantum chromodynamics") == []


def test_hits_carry_the_policy_version(library: PolicyLibrary) -> None:
    hits = library.search(policy_area="privacy", query="late fee")
    assert {hit.policy_version for hit in hits} == {policy_version()}
    assert json.loads(json.dumps(hits[0].as_dict()))["policy_version"] == policy_version()


def test_custom_document_is_versioned_by_its_content() -> None:
    first = PolicyLibrary(TINY_POLICY).search(policy_area="alpha")[0]
    second = PolicyLibrary(TINY_POLICY + "\nmore\n").search(policy_area="alpha")[0]
    assert first.policy_version != second.policy_version
    pinned = PolicyLibrary(TINY_POLICY, version="v7").search(policy_area="alpha")[0]
    assert pinned.policy_version == "v7"


def test_staff_only_lines_never_reach_customer_text(library: PolicyLibrary) -> None:
    section = library.get("waivers-refunds")
    assert "do not promise a refund before billing approves it." in section.internal_lines
    assert "Internal:" in section.text
    assert "Internal:" not in section.customer_text
    assert "before billing approves it" not in section.customer_text
    phrases = internal_policy_phrases()
    for area in AREA_IDS:
        text = library.search(policy_area=area)[0].text
        assert not [phrase for phrase in phrases if phrase in text], area


def test_internal_phrases_drop_the_marker() -> None:
    phrases = internal_policy_phrases()
    assert "do not promise a refund before billing approves it." in phrases
    assert not [phrase for phrase in phrases if phrase.lower().startswith("internal")]


def test_internal_lines_are_recognised_however_they_are_formatted() -> None:
    markdown = """## Fees {#fees}
Fees are due on return.
- **Internal:** waive quietly for friends
> internal: never quote this
Internal:keep it short
Internal use of the store printer is free.
"""
    section = PolicyLibrary(markdown).get("fees")
    assert section.internal_lines == (
        "waive quietly for friends",
        "never quote this",
        "keep it short",
    )
    assert section.customer_text == (
        "Fees are due on return.\nInternal use of the store printer is free."
    )


def test_bm25_score_matches_a_hand_computation() -> None:
    # Indexed tokens (title + text): alpha=[alpha zebra zebra lion] (4), beta=[beta lion tiger]
    # (3), gamma=[gamma tiger wolf bear] (4); avgdl = 11/3. "zebra" is in 1 of 3 documents.
    k1, b = 1.5, 0.75
    idf = math.log((3 - 1 + 0.5) / (1 + 0.5))
    expected = idf * 2 * (k1 + 1) / (2 + k1 * (1 - b + b * 4 / (11 / 3)))
    hits = PolicyLibrary(TINY_POLICY).search(query="zebra")
    assert [hit.section_id for hit in hits] == ["alpha"]
    assert hits[0].score == pytest.approx(expected)
    assert hits[0].score == pytest.approx(0.70903, abs=1e-5)


def test_bm25_prefers_the_document_with_more_of_the_rare_word() -> None:
    hits = PolicyLibrary(TINY_POLICY).search(query="wolf and zebra", top_k=3)
    assert [hit.section_id for hit in hits] == ["alpha", "gamma"]


def test_tokens_are_lower_case_stemmed_and_free_of_stop_words() -> None:
    assert policy_tokens("The FEE for my rental") == ["fee", "rental"]
    assert len(set(policy_tokens("returned returning returns"))) == 1
    assert policy_tokens("charged charges") == policy_tokens("charge charge")


def test_heading_without_id_is_rejected_with_its_line() -> None:
    with pytest.raises(PolicyDocumentError, match="line 3: heading 'Fees' has no stable id"):
        PolicyLibrary("# Policy\n\n## Fees\ntext\n")


def test_duplicate_id_is_rejected() -> None:
    with pytest.raises(PolicyDocumentError, match="'fees' already used on line 1"):
        PolicyLibrary("## Fees {#fees}\na\n### More fees {#fees}\nb\n")


def test_headings_inside_code_blocks_are_text() -> None:
    library = PolicyLibrary("## Fees {#fees}\n```\n## not a heading\n```\n")
    assert [section.id for section in library.sections()] == ["fees"]
    assert "## not a heading" in library.get("fees").customer_text
