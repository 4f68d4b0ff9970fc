"""Emails in other languages: the risk vocabulary reads them, and the offline model hands the
ones it cannot answer to a person, with the language on the ticket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from mediavault.agent.api import triage_email
from mediavault.graph.context import Context
from mediavault.graph.safety.rules import assess_risk


@pytest.fixture
def context(demo_db_path: Path, mediavault_home: Path) -> Context:
    return Context(home=mediavault_home, db=str(demo_db_path), review="none")


def _email(email_id: str, subject: str, body: str) -> dict[str, Any]:
    return {"email_id": email_id, "received_at": "2026-03-01T09:00:00Z",
            "from": "nobody@example.org", "subject": subject, "body": body}


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("Mon avocat vous enverra une mise en demeure.", "legal_threat"),
        ("Si no me devuelven el dinero, iré a juicio con mi abogado.", "legal_threat"),
        ("Der Notausgang in der Filiale ist seit Tagen zugestellt.", "safety_concern"),
        ("Il commesso mi manda messaggi ogni notte, è una molestia.", "harassment"),
        ("Quero uma cópia de todos os dados pessoais que guardam sobre mim.", "privacy_request"),
        ("Ik ben verslaggever bij een regionale krant en schrijf een artikel.", "media_inquiry"),
        ("Zgłosiłem w banku reklamację transakcji i zastrzegłem kartę.", "fraud_chargeback"),
        ("Proszę o zwrot 15 zł na kartę.", "refund_request"),
    ],
)
def test_each_category_is_read_in_the_policy_languages(text: str, category: str) -> None:
    assert category in assess_risk("", text).categories


@pytest.mark.parametrize(
    "text",
    [
        "Avez-vous « Le Procès » en DVD ? Mon ami avocat me l'a conseillé.",
        "Mi amiga Sue dice que sois el mejor videoclub de España.",
        "Haben Sie „Der Anwalt des Teufels“ in der Filiale Münster?",
    ],
)
def test_benign_mentions_in_other_languages_stay_benign(text: str) -> None:
    assert assess_risk("", text).flags == ()


def test_a_french_question_goes_to_tier1_with_its_language(context: Context) -> None:
    result = triage_email(_email(
        "fr-1", "Horaires du magasin",
        "Bonjour, est-ce que le magasin de Lyon est ouvert le dimanche matin ? "
        "Je voudrais rendre deux films avant midi. Merci beaucoup, Claire"), context=context)
    assert result.status == "escalated"
    assert result.queue == "tier1_general"
    assert (result.ticket or {}).get("language") == "fr"


def test_a_german_legal_threat_goes_to_legal_with_its_language(context: Context) -> None:
    result = triage_email(_email(
        "de-1", "Ihre Forderung",
        "Sehr geehrte Damen und Herren, die Gebühr ist falsch. Mein Anwalt wird Ihnen ein "
        "anwaltliches Schreiben mit Fristsetzung schicken."), context=context)
    assert result.status == "escalated"
    assert result.queue == "tier2_legal"
    ticket = result.ticket or {}
    assert ticket.get("language") == "de"
    assert any("legal_threat" in finding for finding in ticket.get("risk_findings", []))


def test_a_spanish_refund_request_goes_to_billing(context: Context) -> None:
    result = triage_email(_email(
        "es-1", "Reembolso",
        "Hola, la película no se podía ver, el disco estaba rayado. Quiero un reembolso de "
        "los 3,99 euros, por favor. Gracias, Paula"), context=context)
    assert result.status == "escalated"
    assert result.queue == "billing"


def test_only_the_offline_model_hands_other_languages_to_a_person(tmp_path: Path) -> None:
    from mediavault.graph.safety.what_a_reader_sees import answerable_language
    from mediavault.tools.text_language import detect_language

    french = detect_language("Bonjour, est-ce que le magasin de Lyon est ouvert dimanche ?")
    english = detect_language("Hello, is the Lyon store open on Sunday morning?")
    assert not answerable_language(french, Context(home=tmp_path, model="rules"))
    assert answerable_language(french, Context(home=tmp_path, model="openai:gpt-4o-mini"))
    assert answerable_language(english, Context(home=tmp_path, model="rules"))


@pytest.mark.parametrize(
    ("text", "category"),
    [
        ("I will ꓢꓴꓰ you", "legal_threat"),  # Lisu capitals
        ("My ᏞᎪᎳYᎬᎡ will call you", "legal_threat"),  # Cherokee
        ("I will 𝓼𝓾𝓮 you", "legal_threat"),  # mathematical script letters
        ("My atorney will contact you about these fees", "legal_threat"),  # one letter dropped
        ("My lawyre will be in touch", "legal_threat"),  # two letters swapped
        ("I am a jounalist writing a story about your late fees", "media_inquiry"),
        ("Could I have that money back please?", "refund_request"),
    ],
)
def test_look_alikes_and_near_misses_are_read(text: str, category: str) -> None:
    assert category in assess_risk("", text).categories


@pytest.mark.parametrize(
    "text",
    [
        "The cake had three layers and my kids loved the film.",
        "Sue at the counter was lovely.",
        "I reported the broken case to the clerk, who was very kind.",
        "No refund needed, I just wanted to let you know.",
        "Press play and enjoy, said my daughter.",
    ],
)
def test_near_misses_need_their_context(text: str) -> None:
    assert assess_risk("", text).flags == ()


def test_cases_show_prints_the_language_and_the_findings(context: Context) -> None:
    from typer.testing import CliRunner

    from mediavault.cli import app

    triage_email(_email(
        "de-2", "Letzte Mahnung",
        "Sehr geehrte Damen und Herren, mein Anwalt bereitet die Klage gegen MediaVault vor, "
        "wenn die Gebühr nicht bis Freitag erstattet wird."), context=context)
    result = CliRunner().invoke(app, ["cases", "show", "de-2", "--home", str(context.home)])
    assert result.exit_code == 0, result.stderr
    assert "language: de" in result.stdout
    shown = " ".join(result.stdout.split())
    assert "risk: legal_threat: rule" in shown and "in body" in shown
