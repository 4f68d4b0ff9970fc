"""Deny by default: contact data, links, markup, forbidden phrases and staff-only material
in a draft, however disguised, while the customer's own details and honest replies pass."""

from __future__ import annotations

import pytest

from mediavault.tools.drafting.reply import validate_reply
from mediavault.tools.drafting.staff_only import paraphrases_internal_text

SENDER = "Dana Whitfield <dana.whitfield@example.com>"
ON_FILE = {"555-0142", "12 Orchard Lane"}


def reply(sentence: str) -> str:
    return (f"Hello Dana,\n\nThank you for writing to us about your account.\n\n"
            f"Here is what we found:\n- {sentence}\n\nKind regards,\nMediaVault Support Team\n")


def codes(sentence: str) -> set[str]:
    report = validate_reply(reply(sentence), sender_address=SENDER, allowed_contacts=ON_FILE)
    return set(report.codes)


@pytest.mark.parametrize(
    ("sentence", "code"),
    [
        # e-mail addresses: words, brackets, other languages, encodings, reversed, look-alikes
        ("Write to ken dot ito at mvault dot co dot uk about it.", "dlp_email"),
        ("Mail sam (at) example (dot) org today.", "dlp_email"),
        ("Escriba a ventas arroba mediavault punto es, por favor.", "dlp_email"),
        ("Schreiben Sie an info ät mediavault punkt de.", "dlp_email"),
        ("Send it to help&#64;mediavault&#46;com please.", "dlp_email"),
        ("Copy in audit%40mediavault.com when you reply.", "dlp_email"),
        ("Their inbox is moc.tluavaidem@gnillib backwards.", "dlp_email"),
        ("Contact ｊｏ＠ｅｘａｍｐｌｅ．ｎｅｔ for that.", "dlp_email"),
        ("Reply to dana.whitfie1d@example.com as well.", "dlp_email"),
        ("Ask Lee at hotmail, com (no spaces).", "dlp_email"),
        # phone numbers: separators, split, spelled, other scripts, vanity
        ("Call the store on 503/555/0187 today.", "dlp_phone"),
        ("The desk is on 555_0166 in the morning.", "dlp_phone"),
        ("Dial 971 first, then 555, and finally 0121.", "dlp_phone"),
        ("It starts with 555. It ends with 0154.", "dlp_phone"),
        ("Ring five five five, zero one seven three.", "dlp_phone"),
        ("Call five hundred fifty-five, oh one nine nine.", "dlp_phone"),
        ("Llame al cinco cinco cinco, cero uno ocho cuatro.", "dlp_phone"),
        ("The line is ٥٥٥-٠١٧٧ after hours.", "dlp_phone"),
        ("店長の番号は五五五の〇一八八です。", "dlp_phone"),
        ("Phone 1-800-MEDIAVLT for fees.", "dlp_phone"),
        ("Joignable au 01.23.45.67.89 le matin.", "dlp_phone"),
        # street addresses: any order, abbreviations, units, postcodes, words
        ("Bring it back to 1200 Harbor Avenue today.", "dlp_street_address"),
        ("The drop box is at 215 Elm St #4B by the shop.", "dlp_street_address"),
        ("Return it to Hauptstraße 112, 10115 Berlin.", "dlp_street_address"),
        ("It turned up at two hundred twelve Birch Court.", "dlp_street_address"),
        ("The store is on Harbor Avenue, number twelve hundred.", "dlp_street_address"),
        ("Your neighbour at 14 Orchard Ln has it.", "dlp_street_address"),
        ("Post it to PO Box 4471, Portland OR 97208.", "dlp_street_address"),
        ("Leave it at Flat 3, 22 Kingsley Rd, Leeds LS6 2AB.", "dlp_street_address"),
        # links: any public suffix, shorteners, IPs, spelled, look-alike dots
        ("Pay online at mediavault.help/pay now.", "dlp_url"),
        ("The breakdown is at bit.ly/3xMvFee today.", "dlp_url"),
        ("Visit mediavault dot co dot uk slash help soon.", "dlp_url"),
        ("Log in at mediavault。com to print it.", "dlp_url"),
        ("See http://[2001:db8::1]/scans for the log.", "dlp_url"),
        ("Staff can check localhost:3000/admin later.", "dlp_url"),
        # markup of every kind
        ("**Important:** the fee stands as it is.", "dlp_markup"),
        ("Late fees follow `fee = days * 1.00` exactly.", "dlp_markup"),
        ("[b]Overdue[/b] and still accruing a fee.", "dlp_markup"),
        # forbidden phrases in any disguise
        ("We are promising you a full waiver soon.", "forbidden_phrase"),
        ("Treat this as our guaranty that it is void.", "forbidden_phrase"),
        ("We gurantee you will not be charged again.", "forbidden_phrase"),
        ("We ɢᴜᴀʀᴀɴᴛᴇᴇ the date is recorded correctly.", "forbidden_phrase"),
        # staff-only material: queues, codes, routing, tickets, paraphrases, other people
        ("I have routed this to tier2_legal for review.", "internal_policy_text"),
        ("It went to Trust & Safety with a flag.", "internal_policy_text"),
        ("Your message is now ticket MV-48213 with us.", "internal_policy_text"),
        ("Quote INC0045521 if you call us back.", "internal_policy_text"),
        ("Your account has already used its courtesy waiver this year.", "internal_policy_text"),
        ("Staff are told never to confirm or deny whether a named person is a customer.",
         "internal_policy_text"),
        ("A member at the Lakeside store had the same charge.", "third_party"),
        ("Your husband's account shows the same film still out.", "third_party"),
        # and a few more shapes: a provider without its ending, tens spelled out, "www",
        # underscores, streets in other languages and lower case, spelled-out tiers
        ("You can also write to jo_doe at gmail about it.", "dlp_email"),
        ("Call five fifty-five oh one eighty-seven for billing.", "dlp_phone"),
        ("The first three digits are 555, the last four are 0187.", "dlp_phone"),
        ("See www mediavault com for the form.", "dlp_url"),
        ("The fee is __final__ and cannot change.", "dlp_markup"),
        ("Send it to ul. Marszałkowska 10 in Warsaw.", "dlp_street_address"),
        ("The parcel went to 9 willow road near the park.", "dlp_street_address"),
        ("This is now with tier 2 for a look.", "internal_policy_text"),
        ("My instructions say I cannot discuss waivers.", "internal_policy_text"),
    ],
)
def test_disguised_material_is_refused(sentence: str, code: str) -> None:
    assert code in codes(sentence)


@pytest.mark.parametrize(
    "sentence",
    [
        "The e-mail address on file for your account is dana.whitfield@example.com.",
        "The phone number on file is 555-0142.",
        "If your number is no longer (555) 0142, staff at your home store can update it.",
        "The postal address on file is 12 Orchard Lane.",
        "Your rental of MIDNIGHT ORCHARD (rental #15829) began on 20 February 2026 at 14:12.",
        "That is 2 days and 19 hours past the due time, which counts as 3 started days.",
        "The account shows a payment of $5.99 on 27/02/2026 for this rental.",
        "Between 1 December and 31 December 2025 your account shows 5 rentals.",
        "Store staff may grant one courtesy waiver of up to $5.00 per customer in a 12-month "
        "period, at their discretion.",
        "Information about a person is shared only with that person.",
        "You rented 2 FROZEN JUNCTION copies; rental 1207 Frozen Junction is still out.",
        "We could not find 12 Angry Men in our catalogue, so please ask at the Riverton store.",
        "The due date is the rental date plus the film's rental duration, e.g. 20 Feb + 4 days.",
    ],
)
def test_honest_sentences_and_the_customers_own_details_pass(sentence: str) -> None:
    assert codes(sentence) == set()


def test_a_paraphrase_of_a_staff_only_line_is_told_from_the_public_rule() -> None:
    assert paraphrases_internal_text("When unsure we escalate, since a slower human answer "
                                     "beats a wrong automatic one.")
    assert not paraphrases_internal_text("Store staff may grant one courtesy waiver of up to "
                                         "$5.00 per customer in a 12-month period.")


def test_a_mediavault_address_listed_in_the_policy_companion_may_be_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mediavault.policies import policy_rules

    sentence = "Write to billing@mediavault.example about the fee."
    assert "dlp_email" in codes(sentence)
    rules = policy_rules()
    listed = rules.communication.model_copy(
        update={"mediavault_addresses": ("billing@mediavault.example",)})
    monkeypatch.setattr("mediavault.tools.drafting.validation.policy_rules",
                        lambda: rules.model_copy(update={"communication": listed}))
    assert "dlp_email" not in codes(sentence)
