"""Text folding and language identification: what looks alike compares alike."""

from __future__ import annotations

import pytest

from mediavault.tools.text_folding import fold, fold_for_words, rejoin_split_letters
from mediavault.tools.text_language import detect_language


@pytest.mark.parametrize(
    ("written", "read_as"),
    [
        ("I will \u0455u\u0435 you", "i will sue you"),  # Cyrillic dze and ie
        ("L\u200bA\u200bW\u200bY\u200bE\u200bR", "lawyer"),  # zero-width spaces
        ("\uff47\uff55\uff41\uff52\uff41\uff4e\uff54\uff45\uff45", "guarantee"),  # full width
        ("g\u03c5\u03b1r\u03b1ntee", "guarantee"),  # Greek upsilon and alpha
        ("call \uff15\uff15\uff15-\uff10\uff11\uff14\uff12", "call 555-0142"),
        ("\u0661\u0662\u0663", "123"),  # Arabic-Indic digits
        ("\U0001d42c\U0001d42e\U0001d41e", "sue"),  # mathematical bold
    ],
)
def test_look_alikes_fold_to_the_latin_text_they_imitate(written: str, read_as: str) -> None:
    assert fold(written) == read_as


def test_ascii_digits_are_never_read_as_letters_by_the_plain_fold() -> None:
    # A phone-number check must still see digits after folding.
    assert fold("0l 1O") == "0l 1o"


@pytest.mark.parametrize(
    ("written", "read_as"),
    [("s u e", "sue"), ("a-t-t-o-r-n-e-y", "attorney"), ("l.a.w.y.e.r", "lawyer"),
     ("l4wy3r", "lawyer"), ("$ue", "sue"), ("Rechtsanw\u00e4lt", "rechtsanwalt")],
)
def test_words_written_apart_or_in_leetspeak_are_rejoined(written: str, read_as: str) -> None:
    assert fold_for_words(written) == read_as


def test_amounts_dates_and_ordinary_prose_keep_their_shape() -> None:
    text = "I paid $29.98 on 2006-02-14 for plan A or B."
    assert fold_for_words(text) == text.casefold()
    assert rejoin_split_letters("a b") == "a b"  # two letters are prose, not a split word


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Hola, quiero saber cuando tengo que devolver la pelicula", "es"),
        ("Ich werde meinen Anwalt einschalten, wenn das so weitergeht", "de"),
        ("Gdzie jest moj film? Chce zwrotu pieniedzy za wypozyczenie", "pl"),
        ("Ik wil mijn geld terug voor de film die ik niet heb gezien", "nl"),
    ],
)
def test_the_language_of_a_message_is_identified_offline(text: str, code: str) -> None:
    guess = detect_language(text)
    assert guess.code == code and guess.trusted and not guess.is_english


def test_a_terse_english_note_is_not_taken_for_another_language() -> None:
    assert detect_language("thx, GLASS FRONTIER due?").is_english
    assert detect_language("When is my film due back? Thanks, Ana").is_english
