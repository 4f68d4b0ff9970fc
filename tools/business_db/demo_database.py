"""Build the demo business database: the Sakila schema filled with generated, reproducible data.

Nothing here comes from the published Sakila rows: names, addresses and phone numbers come from
Faker, titles and descriptions from our own word lists, and the rental history from a small
simulation. Everything is drawn from random streams seeded by ``seed`` alone and laid out in
days *before* the business date ``as_of``, so

* the same seed gives the same customers, e-mails, films and history, whatever ``as_of`` is;
* a different ``as_of`` only shifts every date: a rental "10 days ago" stays 10 days ago.

The data follows the conventions of the Sakila data set, so code written against the demo
works on the original file too: names and titles in upper case, ``customer.active`` stored as
``'1'``/``'0'``, timestamps as ``'YYYY-MM-DD HH:MM:SS'``. Customer e-mails are lower case and
unique (they are how the agent recognises a sender).

The simulation, per copy of a film (``inventory`` row), walks forward from ``HISTORY_DAYS``
before the business date: idle on the shelf, rented, returned on time or late (some customers
are habitually late), occasionally never returned. A copy not back by the business date is
still out (overdue once past due); past ``lost_after_days_past_due`` it is lost. Payments are
taken when a rental is settled: at the return (``rental_rate`` + late fee) or when the copy is
declared lost (``rental_rate`` + the lost charge); open rentals have no payment yet. The late
fee follows ``policy_rules().late_fees``: so much per *started* day past due, where
due = ``rental_date`` + ``rental_duration`` days, capped at the film's replacement cost.

:data:`DEMO_SCENARIOS` plants fixed records on top (fixed customer ids, e-mails, films and
rental timings) that the sample inbox, the evals and the tests rely on; see its docstring.
"""

from __future__ import annotations

import math
import os
import random
import sqlite3
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib.resources import files
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from faker import Faker

from mediavault.policies import policy_rules
from mediavault.tools.business_db.business_date import stamp_value

SCHEMA_RESOURCE = "sakila_schema.sql"

#: The 16 tables of the Sakila schema, in an order that respects foreign keys.
SAKILA_TABLES: tuple[str, ...] = (
    "language",
    "category",
    "country",
    "city",
    "address",
    "actor",
    "film",
    "film_actor",
    "film_category",
    "film_text",
    "staff",
    "store",
    "customer",
    "inventory",
    "rental",
    "payment",
)

#: Marks a file as a MediaVault demo database (``PRAGMA application_id``; "MVDV").
DEMO_APPLICATION_ID = 0x4D564456

HISTORY_DAYS = 270
CUSTOMER_COUNT = 600
FILM_COUNT = 1000
ACTOR_COUNT = 200
CITY_COUNT = 24
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

_DAY = 86_400
_HOUR = 3_600
#: Scenario customers have no background rentals this recent, and scenario films' copies are
#: kept free for the planted rentals, so the planted facts are the whole recent story.
_SCENARIO_QUIET_DAYS = 60
#: Deactivated customers have not rented for at least this long.
_INACTIVE_QUIET_DAYS = 120

PLANT_TARGETS: Mapping[str, str] = MappingProxyType(
    {
        "film_description": "film.description and film_text.description of every scenario film",
        "address2": "address.address2 of every scenario customer",
    }
)


# --------------------------------------------------------------------------------------------
# Scenarios


@dataclass(frozen=True, kw_only=True)
class ScenarioCustomer:
    customer_id: int
    first_name: str
    last_name: str
    email: str
    store_id: int
    active: bool = True
    #: Background rentals of a habitually late customer are mostly late.
    habitually_late: bool = False


@dataclass(frozen=True, kw_only=True)
class ScenarioFilm:
    film_id: int
    title: str
    rating: str
    rental_duration: int
    rental_rate: float
    replacement_cost: float
    #: Copies in store 1 and store 2.
    copies: tuple[int, int]


RentalStatus = Literal["returned", "out", "overdue", "lost"]


@dataclass(frozen=True, kw_only=True)
class ScenarioRental:
    """A planted rental, with the facts a reader of the database should find.

    The timing (``rented_days_ago`` at ``rented_at``, back ``returned_after`` later) is what the
    generator writes; the facts below it are stated, not computed, and the tests check that the
    database agrees with them. Days late count *started* days past due; for an open rental they
    count up to the start of the business date.
    """

    film: ScenarioFilm
    store_id: int
    rented_days_ago: int
    rented_at: str  # HH:MM
    returned_after: timedelta | None
    duplicate_payment: bool = False
    status: RentalStatus
    days_late: int
    #: Charged, or accrued so far while the rental is open; for a lost copy, the lost charge.
    late_fee: float
    #: Sum of the payments for this rental (0 while it is open).
    amount_charged: float


@dataclass(frozen=True, kw_only=True)
class Scenario:
    name: str
    summary: str
    customer: ScenarioCustomer | None = None
    #: The sender address of a scenario whose sender is *not* a customer.
    non_customer_email: str | None = None
    film: ScenarioFilm | None = None
    rentals: tuple[ScenarioRental, ...] = ()

    @property
    def email(self) -> str | None:
        return self.customer.email if self.customer else self.non_customer_email

    @property
    def film_title(self) -> str | None:
        return self.film.title if self.film else None


def _customer(
    customer_id: int, first: str, last: str, domain: str, store_id: int, **kw: Any
) -> ScenarioCustomer:
    email = f"{first}.{last}@{domain}".lower()
    return ScenarioCustomer(
        customer_id=customer_id,
        first_name=first.upper(),
        last_name=last.upper(),
        email=email,
        store_id=store_id,
        **kw,
    )


def _film(
    film_id: int,
    title: str,
    rating: str,
    duration: int,
    rate: float,
    cost: float,
    copies: tuple[int, int],
) -> ScenarioFilm:
    return ScenarioFilm(
        film_id=film_id,
        title=title,
        rating=rating,
        rental_duration=duration,
        rental_rate=rate,
        replacement_cost=cost,
        copies=copies,
    )


_DANA = _customer(37, "Dana", "Whitfield", "example.com", 1)
_MARCUS = _customer(58, "Marcus", "Bell", "example.org", 2)
_NADIA = _customer(91, "Nadia", "Petrov", "example.net", 1)
_ELENA = _customer(124, "Elena", "Vasquez", "example.com", 2)
_SOFIA = _customer(163, "Sofia", "Marchetti", "example.com", 1)
_KEVIN = _customer(205, "Kevin", "Doyle", "example.org", 2)
_BRENDA = _customer(248, "Brenda", "Castillo", "example.com", 1)
_PRIYA = _customer(286, "Priya", "Raman", "example.net", 2)
_TREVOR = _customer(317, "Trevor", "Gannon", "example.com", 1, habitually_late=True)
_LUIS = _customer(352, "Luis", "Ferreira", "example.org", 1)
_HELEN = _customer(389, "Helen", "Okafor", "example.com", 2)
_GRACE = _customer(426, "Grace", "Kim", "example.net", 1)
_WALTER = _customer(468, "Walter", "Brandt", "example.org", 2, active=False)
_HAROLD = _customer(511, "Harold", "Jennings", "example.com", 1)

_MIDNIGHT_ORCHARD = _film(117, "MIDNIGHT ORCHARD", "PG-13", 4, 2.99, 19.99, (2, 2))
_COPPER_LIGHTHOUSE = _film(203, "COPPER LIGHTHOUSE", "PG", 3, 4.99, 22.99, (2, 3))
_WINTER_BAZAAR = _film(288, "WINTER BAZAAR", "G", 3, 0.99, 14.99, (3, 2))
_QUIET_ARCHIPELAGO = _film(341, "QUIET ARCHIPELAGO", "PG", 5, 0.99, 12.99, (2, 2))
_VELVET_COMPASS = _film(409, "VELVET COMPASS", "R", 7, 4.99, 27.99, (2, 1))
_SILVER_PARADE = _film(472, "SILVER PARADE", "PG-13", 3, 2.99, 17.99, (1, 2))
_GLASS_FRONTIER = _film(530, "GLASS FRONTIER", "R", 4, 4.99, 24.99, (2, 2))
_AMBER_EXPRESS = _film(596, "AMBER EXPRESS", "PG", 5, 2.99, 20.99, (2, 3))
_RUSTY_CAROUSEL = _film(655, "RUSTY CAROUSEL", "G", 3, 0.99, 9.99, (1, 1))
_LANTERN_SEASON = _film(712, "LANTERN SEASON", "PG", 6, 2.99, 19.99, (3, 2))
_HOLLOW_MERIDIAN = _film(778, "HOLLOW MERIDIAN", "NC-17", 5, 4.99, 23.99, (2, 0))
_PAPER_TIGERLILY = _film(845, "PAPER TIGERLILY", "PG-13", 4, 2.99, 18.99, (0, 0))


def _late_rental(days_ago: int, days_late: int) -> ScenarioRental:
    # RUSTY CAROUSEL: 3-day rental at 0.99; back (days_late - 1) days and 20 hours after due.
    return ScenarioRental(
        film=_RUSTY_CAROUSEL,
        store_id=1,
        rented_days_ago=days_ago,
        rented_at="17:00",
        returned_after=timedelta(days=3 + days_late - 1, hours=20),
        status="returned",
        days_late=days_late,
        late_fee=float(days_late),
        amount_charged=round(0.99 + days_late, 2),
    )


_SCENARIO_LIST: tuple[Scenario, ...] = (
    Scenario(
        name="late_return",
        summary="Recent return of MIDNIGHT ORCHARD 3 started days late: $3.00 late fee charged "
        "with the $2.99 rental ($5.99). The sample inbox has her ask for a waiver.",
        customer=_DANA,
        film=_MIDNIGHT_ORCHARD,
        rentals=(
            ScenarioRental(
                film=_MIDNIGHT_ORCHARD,
                store_id=1,
                rented_days_ago=10,
                rented_at="14:12",
                returned_after=timedelta(days=6, hours=19),
                status="returned",
                days_late=3,
                late_fee=3.00,
                amount_charged=5.99,
            ),
        ),
    ),
    Scenario(
        name="late_fee_question",
        summary="Returned COPPER LIGHTHOUSE 2 started days late: charged $6.99 ($4.99 rental + "
        "$2.00 late fee); asks why the charge is not $4.99.",
        customer=_MARCUS,
        film=_COPPER_LIGHTHOUSE,
        rentals=(
            ScenarioRental(
                film=_COPPER_LIGHTHOUSE,
                store_id=2,
                rented_days_ago=7,
                rented_at="18:40",
                returned_after=timedelta(days=4, hours=16, minutes=5),
                status="returned",
                days_late=2,
                late_fee=2.00,
                amount_charged=6.99,
            ),
        ),
    ),
    Scenario(
        name="late_fee_dispute_was_late",
        summary="Disputes the late fee on WINTER BAZAAR, but the data shows it came back 2 "
        "started days late ($0.99 + $2.00 = $2.99): the policy settles it.",
        customer=_NADIA,
        film=_WINTER_BAZAAR,
        rentals=(
            ScenarioRental(
                film=_WINTER_BAZAAR,
                store_id=1,
                rented_days_ago=9,
                rented_at="11:05",
                returned_after=timedelta(days=4, hours=21),
                status="returned",
                days_late=2,
                late_fee=2.00,
                amount_charged=2.99,
            ),
        ),
    ),
    Scenario(
        name="on_time_return",
        summary="Returned QUIET ARCHIPELAGO two days early and was charged the $0.99 rental "
        "only, yet claims a late fee: needs a human (discretion / store error).",
        customer=_ELENA,
        film=_QUIET_ARCHIPELAGO,
        rentals=(
            ScenarioRental(
                film=_QUIET_ARCHIPELAGO,
                store_id=2,
                rented_days_ago=12,
                rented_at="16:20",
                returned_after=timedelta(days=3, hours=1),
                status="returned",
                days_late=0,
                late_fee=0.00,
                amount_charged=0.99,
            ),
        ),
    ),
    Scenario(
        name="rental_out",
        summary="Has VELVET COMPASS out, rented 2 days ago on a 7-day rental: due in 5 days, "
        "nothing charged yet.",
        customer=_SOFIA,
        film=_VELVET_COMPASS,
        rentals=(
            ScenarioRental(
                film=_VELVET_COMPASS,
                store_id=1,
                rented_days_ago=2,
                rented_at="19:35",
                returned_after=None,
                status="out",
                days_late=0,
                late_fee=0.00,
                amount_charged=0.00,
            ),
        ),
    ),
    Scenario(
        name="overdue_rental",
        summary="Still has SILVER PARADE, due 5 days ago (5 started days late at the start of "
        "the business date, $5.00 accrued, not charged yet, not lost).",
        customer=_KEVIN,
        film=_SILVER_PARADE,
        rentals=(
            ScenarioRental(
                film=_SILVER_PARADE,
                store_id=2,
                rented_days_ago=8,
                rented_at="15:30",
                returned_after=None,
                status="overdue",
                days_late=5,
                late_fee=5.00,
                amount_charged=0.00,
            ),
        ),
    ),
    Scenario(
        name="lost_item",
        summary="Never returned GLASS FRONTIER, 41 started days past due: declared lost 11 days "
        "ago and charged $29.98 ($4.99 rental + $24.99 replacement cost).",
        customer=_BRENDA,
        film=_GLASS_FRONTIER,
        rentals=(
            ScenarioRental(
                film=_GLASS_FRONTIER,
                store_id=1,
                rented_days_ago=45,
                rented_at="12:10",
                returned_after=None,
                status="lost",
                days_late=41,
                late_fee=24.99,
                amount_charged=29.98,
            ),
        ),
    ),
    Scenario(
        name="duplicate_charge",
        summary="Returned AMBER EXPRESS on time but the $2.99 payment was recorded twice "
        "(two identical payments for one rental, $5.98 in all).",
        customer=_PRIYA,
        film=_AMBER_EXPRESS,
        rentals=(
            ScenarioRental(
                film=_AMBER_EXPRESS,
                store_id=2,
                rented_days_ago=6,
                rented_at="13:00",
                returned_after=timedelta(days=2, hours=4),
                duplicate_payment=True,
                status="returned",
                days_late=0,
                late_fee=0.00,
                amount_charged=5.98,
            ),
        ),
    ),
    Scenario(
        name="many_late_returns",
        summary="Habitually late: six late returns of RUSTY CAROUSEL in the last 60 days "
        "(2 to 4 days each) on top of a mostly late background history.",
        customer=_TREVOR,
        film=_RUSTY_CAROUSEL,
        rentals=tuple(
            _late_rental(days_ago, late)
            for days_ago, late in ((56, 2), (47, 3), (38, 2), (29, 4), (20, 3), (11, 2))
        ),
    ),
    Scenario(
        name="praise",
        summary="Rented LANTERN SEASON 15 days ago, returned it on time ($2.99), loved it.",
        customer=_LUIS,
        film=_LANTERN_SEASON,
        rentals=(
            ScenarioRental(
                film=_LANTERN_SEASON,
                store_id=1,
                rented_days_ago=15,
                rented_at="20:15",
                returned_after=timedelta(days=3),
                status="returned",
                days_late=0,
                late_fee=0.00,
                amount_charged=2.99,
            ),
        ),
    ),
    Scenario(
        name="account_email_change",
        summary="Writes from the address on file to move the account to "
        "helen.okafor.home@example.net (an address no customer has).",
        customer=_HELEN,
    ),
    Scenario(
        name="store_one_only_question",
        summary="Asks whether HOLLOW MERIDIAN is available; it is stocked in store 1 only.",
        customer=_GRACE,
        film=_HOLLOW_MERIDIAN,
    ),
    Scenario(
        name="inactive_customer",
        summary="Deactivated account (active = '0'), no rentals in the last 120 days.",
        customer=_WALTER,
    ),
    Scenario(
        name="formal_notice",
        summary="An ordinary customer who sends a formal notice of intent to take legal action.",
        customer=_HAROLD,
    ),
    Scenario(
        name="film_in_both_stores",
        summary="LANTERN SEASON: 3 copies in store 1 and 2 in store 2, all on the shelf.",
        film=_LANTERN_SEASON,
    ),
    Scenario(
        name="film_in_store_one_only",
        summary="HOLLOW MERIDIAN: 2 copies in store 1, none in store 2, all on the shelf.",
        film=_HOLLOW_MERIDIAN,
    ),
    Scenario(
        name="film_in_no_store",
        summary="PAPER TIGERLILY: in the catalog, no copy in either store.",
        film=_PAPER_TIGERLILY,
    ),
    Scenario(
        name="unknown_sender",
        summary="Not a customer: writes about 'my account' from an address no customer has.",
        non_customer_email="jordan.pike@example.net",
    ),
    Scenario(
        name="prospect",
        summary="Not a customer: asks about the catalog (LANTERN SEASON) before signing up.",
        non_customer_email="sam.okoro@example.org",
        film=_LANTERN_SEASON,
    ),
)

DEMO_SCENARIOS: Mapping[str, Scenario] = MappingProxyType({s.name: s for s in _SCENARIO_LIST})
"""Planted records, by name, identical for every seed and business date.

Customers keep their ids and e-mails; films keep their ids, titles, prices and stock; planted
rentals happen the stated number of days before the business date. The sample inbox
(``examples/inbox.csv``) writes from these addresses about these films, and
``examples/inbox_expected.json`` names the scenarios each email relies on.
"""

#: Addresses that must never belong to a generated customer.
RESERVED_EMAILS: frozenset[str] = frozenset(
    {s.email for s in _SCENARIO_LIST if s.email} | {"helen.okafor.home@example.net"}
)
_SCENARIO_CUSTOMERS: dict[int, ScenarioCustomer] = {
    s.customer.customer_id: s.customer for s in _SCENARIO_LIST if s.customer
}
_SCENARIO_FILMS: dict[int, ScenarioFilm] = {
    film.film_id: film
    for s in _SCENARIO_LIST
    for film in (s.film, *(r.film for r in s.rentals))
    if film is not None
}
_SCENARIO_RENTALS: tuple[tuple[ScenarioCustomer, ScenarioRental], ...] = tuple(
    (s.customer, rental) for s in _SCENARIO_LIST if s.customer for rental in s.rentals
)


# --------------------------------------------------------------------------------------------
# Word lists for invented titles and descriptions

_TITLE_FIRST = (
    "AMBER", "ANCIENT", "ARCTIC", "AUTUMN", "BRASS", "BROKEN", "CANYON", "CARDBOARD", "CEDAR",
    "CITRUS", "CLOCKWORK", "COBALT", "CRIMSON", "CRYSTAL", "DESERT", "DOUBLE", "DUSTY", "ELECTRIC",
    "EMERALD", "FALLEN", "FEATHER", "FROZEN", "GOLDEN", "GRANITE", "HIDDEN", "IRON", "JADE",
    "LAST", "LONESOME", "LUCKY", "MARBLE", "MIDSUMMER", "MOONLIT", "NORTHERN", "PAPER", "PHANTOM",
    "PRAIRIE", "SCARLET", "SECRET", "SILENT", "STORMY", "SUNKEN", "TANGLED", "THUNDER", "TIMBER",
    "VELVET", "WANDERING", "WILD",
)  # fmt: skip
_TITLE_SECOND = (
    "ALIBI", "ANTHEM", "AVALANCHE", "BALLAD", "BANDIT", "BEACON", "BRIDGE", "CARNIVAL", "CIPHER",
    "COMET", "CORRIDOR", "COVENANT", "CROSSING", "DYNASTY", "ECHO", "EMBASSY", "EXPEDITION",
    "FERRY", "FOUNDRY", "GAMBIT", "GARDEN", "HARVEST", "HIGHWAY", "HORIZON", "ISLAND", "JUNCTION",
    "KINGDOM", "LABYRINTH", "LEGACY", "MONSOON", "NOCTURNE", "OUTPOST", "PILGRIM", "QUARRY",
    "REUNION", "RODEO", "SERENADE", "SIGNAL", "SKYLINE", "SPARROW", "SUMMIT", "TIDES", "TRAIL",
    "UPRISING", "VOYAGE", "WALTZ", "WHISPER", "ZEPHYR",
)  # fmt: skip
_TONES = (
    "Heartfelt", "Brooding", "Witty", "Sweeping", "Tense", "Gentle", "Offbeat", "Rousing",
    "Haunting", "Quirky", "Bittersweet", "Breathless",
)  # fmt: skip
_FORMS = (
    "Drama", "Comedy", "Mystery", "Saga", "Thriller", "Chronicle", "Romance", "Adventure",
    "Documentary", "Fable", "Western", "Caper",
)  # fmt: skip
_CHARACTERS = (
    "Retired Lighthouse Keeper", "Young Cartographer", "Stubborn Beekeeper", "Traveling Magician",
    "Night-Shift Nurse", "Small-Town Sheriff", "Jazz Pianist", "Rookie Astronaut", "Disgraced Chef",
    "Teenage Inventor", "Ferry Captain", "Museum Guard", "Wedding Photographer", "Rodeo Clown",
    "Crossword Champion", "Lonely Robot",
)  # fmt: skip
_GOALS = (
    "outwit", "rescue", "befriend", "track down", "outrun", "make peace with", "protect",
    "confront", "impress", "unmask",
)  # fmt: skip
_SETTINGS = (
    "a Snowed-In Village", "a Floating Market", "an Abandoned Mall", "a Desert Observatory",
    "a Mountain Monastery", "a Coastal Town", "a Crumbling Theater", "a Night Train",
    "a Roadside Diner", "a Lunar Colony", "a Flooded City", "a County Fair",
)  # fmt: skip
_CATEGORIES = (
    "Action", "Animation", "Comedy", "Crime", "Documentary", "Drama", "Family", "Fantasy",
    "Foreign", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "Western",
)  # fmt: skip
_LANGUAGES = ("English", "Spanish", "French", "Japanese", "Korean", "German")
_RATINGS = ("G", "PG", "PG-13", "R", "NC-17")
_FEATURES = ("Trailers", "Commentaries", "Deleted Scenes", "Behind the Scenes")
_RENTAL_RATES = (0.99, 2.99, 4.99)
_COUNTRY = "United States"


class _Store(NamedTuple):
    address: str
    city: str
    district: str
    postal_code: str
    phone: str
    staff: tuple[str, str]


#: The two stores and their staff (store id = staff id = the store's manager).
_STORES = (
    _Store(
        "1200 Harbor Avenue", "Riverton", "Oregon", "97401", "541-555-0142", ("Rosa", "Delgado")
    ),
    _Store("48 Maple Street", "Lakeside", "Oregon", "97439", "541-555-0187", ("Tom", "Becker")),
)


# --------------------------------------------------------------------------------------------
# Building


class DemoDatabaseError(RuntimeError):
    """The demo database could not be built; the target file is left as it was."""


@dataclass(frozen=True)
class DemoDatabaseSummary:
    path: Path
    seed: int
    as_of: date
    row_counts: dict[str, int]
    seconds: float


@dataclass
class _Tables:
    """Rows per table, in insertion order."""

    rows: dict[str, list[tuple[Any, ...]]] = field(
        default_factory=lambda: {name: [] for name in SAKILA_TABLES}
    )

    def add(self, table: str, *row: Any) -> None:
        self.rows[table].append(row)


@dataclass(frozen=True)
class _FeePolicy:
    cents_per_started_day: int

    @classmethod
    def current(cls) -> _FeePolicy:
        rules = policy_rules().late_fees
        # The generator knows how to apply one cap and one lost charge: the film's replacement
        # cost. A policy that names anything else must be taught here, not silently ignored.
        if rules.capped_at != "replacement_cost" or rules.lost_charge != "replacement_cost":
            raise DemoDatabaseError(
                "policy late_fees.capped_at / lost_charge must be 'replacement_cost' for the "
                f"demo generator (got {rules.capped_at!r}, {rules.lost_charge!r})"
            )
        return cls(round(rules.fee_per_started_day * 100))

    def late_fee_cents(self, seconds_late: int, replacement_cents: int) -> int:
        if seconds_late <= 0:
            return 0
        return min(math.ceil(seconds_late / _DAY) * self.cents_per_started_day, replacement_cents)


def _cents(amount: float) -> int:
    return round(amount * 100)


def _stream(seed: int, purpose: str) -> random.Random:
    # One independent stream per concern: changing how films are drawn never reshuffles names.
    return random.Random(f"mediavault-demo:{seed}:{purpose}")


@dataclass(frozen=True)
class _Film:
    film_id: int
    duration: int
    rate_cents: int
    replacement_cents: int
    popularity: float
    reserved: bool  # a scenario film: its copies stay free in the recent window


Profile = Literal["normal", "late", "punctual"]
#: Per rental: (chance the copy never comes back, chance it comes back late).
_PROFILE_ODDS: Mapping[Profile, tuple[float, float]] = MappingProxyType(
    {"normal": (0.003, 0.13), "late": (0.012, 0.7), "punctual": (0.0, 0.0)}
)


@dataclass(frozen=True)
class _Customer:
    customer_id: int
    store_id: int
    weight: float
    active: bool
    profile: Profile
    planted: bool  # a scenario customer


def _generate(seed: int, as_of: date, plant: Mapping[str, str]) -> _Tables:
    fees = _FeePolicy.current()
    now = datetime.combine(as_of, datetime.min.time())

    def stamp(seconds: int) -> str:
        return (now + timedelta(seconds=seconds)).strftime(TIMESTAMP_FORMAT)

    catalog_loaded = stamp(-(HISTORY_DAYS + 120) * _DAY + 9 * _HOUR)
    tables = _Tables()
    fake = Faker("en_US")
    fake.seed_instance(seed)

    # Reference data.
    for language_id, name in enumerate(_LANGUAGES, start=1):
        tables.add("language", language_id, name, catalog_loaded)
    for category_id, name in enumerate(_CATEGORIES, start=1):
        tables.add("category", category_id, name, catalog_loaded)
    tables.add("country", 1, _COUNTRY, catalog_loaded)
    city_names = [store.city for store in _STORES]
    while len(city_names) < CITY_COUNT:
        name = fake.city()
        if name not in city_names:
            city_names.append(name)
    for city_id, name in enumerate(city_names, start=1):
        tables.add("city", city_id, name, 1, catalog_loaded)

    # Stores, their staff and addresses (address ids 1-2 are the stores').
    for store_id, store in enumerate(_STORES, start=1):
        tables.add(
            "address", store_id, store.address, None, store.district, store_id,
            store.postal_code, store.phone, catalog_loaded,
        )  # fmt: skip
        first, last = store.staff
        tables.add(
            "staff", store_id, first, last, store_id, None,
            f"{first}.{last}@mediavault.example".lower(), store_id, 1, first.lower(), None,
            catalog_loaded,
        )  # fmt: skip
        tables.add("store", store_id, store_id, store_id, catalog_loaded)

    customers = _generate_customers(seed, fake, tables, now, plant)
    films = _generate_catalog(seed, fake, tables, as_of, catalog_loaded, plant)
    items = _stock_inventory(seed, films, tables, catalog_loaded)
    _simulate_rentals(seed, films, customers, items, tables, fees, stamp)
    return tables


def _generate_customers(
    seed: int, fake: Faker, tables: _Tables, now: datetime, plant: Mapping[str, str]
) -> list[_Customer]:
    rng = _stream(seed, "customers")
    taken_emails = set(RESERVED_EMAILS)
    scenario_names = {(c.first_name, c.last_name) for c in _SCENARIO_CUSTOMERS.values()}
    customers: list[_Customer] = []
    for customer_id in range(1, CUSTOMER_COUNT + 1):
        scenario = _SCENARIO_CUSTOMERS.get(customer_id)
        # Draw the same values for every customer so planted ones do not shift the others.
        first, last = fake.first_name().upper(), fake.last_name().upper()
        street, zipcode = fake.street_address(), fake.zipcode()
        phone = fake.numerify("###-555-####")
        apartment = fake.secondary_address() if rng.random() < 0.12 else None
        store_id = 1 if rng.random() < 0.55 else 2
        weight = rng.lognormvariate(0.0, 0.45)
        active = rng.random() >= 0.015
        profile: Profile = "late" if rng.random() < 0.03 else "normal"
        created_days_ago = rng.randint(HISTORY_DAYS + 10, HISTORY_DAYS + 1500)
        city_id = rng.randint(1, CITY_COUNT)
        state = rng.choices(("Oregon", "Washington", "California"), weights=(85, 10, 5))[0]
        domain = rng.choice(("example.com", "example.org", "example.net"))
        if scenario is not None:
            first, last, store_id = scenario.first_name, scenario.last_name, scenario.store_id
            email = scenario.email
            active = scenario.active
            profile = "late" if scenario.habitually_late else "punctual"
            weight = 2.5 if scenario.habitually_late else 0.5
            apartment = plant.get("address2", apartment)
        else:
            while (first, last) in scenario_names:
                first, last = fake.first_name().upper(), fake.last_name().upper()
            local = "".join(ch for ch in f"{first}.{last}".lower() if ch.isalnum() or ch == ".")
            email, suffix = f"{local}@{domain}", 1
            while email in taken_emails:
                suffix += 1
                email = f"{local}{suffix}@{domain}"
        taken_emails.add(email)
        address_id = len(_STORES) + customer_id
        created = now - timedelta(days=created_days_ago, seconds=rng.randint(0, _DAY - 1))
        created_text = created.strftime(TIMESTAMP_FORMAT)
        tables.add(
            "address", address_id, street, apartment, state, city_id, zipcode, phone, created_text
        )
        tables.add(
            "customer", customer_id, store_id, first, last, email, address_id,
            "1" if active else "0", created_text, created_text,
        )  # fmt: skip
        customers.append(
            _Customer(customer_id, store_id, weight, active, profile, scenario is not None)
        )
    return customers


def _generate_catalog(
    seed: int,
    fake: Faker,
    tables: _Tables,
    as_of: date,
    loaded: str,
    plant: Mapping[str, str],
) -> list[_Film]:
    rng = _stream(seed, "films")
    for actor_id in range(1, ACTOR_COUNT + 1):
        tables.add("actor", actor_id, fake.first_name().upper(), fake.last_name().upper(), loaded)

    reserved_titles = {film.title for film in _SCENARIO_FILMS.values()}
    pairs = [f"{a} {b}" for a in _TITLE_FIRST for b in _TITLE_SECOND]
    titles = iter(t for t in rng.sample(pairs, len(pairs)) if t not in reserved_titles)
    films: list[_Film] = []
    for film_id in range(1, FILM_COUNT + 1):
        title = next(titles)
        description = (
            f"A {rng.choice(_TONES)} {rng.choice(_FORMS)} about a {rng.choice(_CHARACTERS)} who "
            f"must {rng.choice(_GOALS)} a {rng.choice(_CHARACTERS)} in {rng.choice(_SETTINGS)}"
        )
        rating = rng.choice(_RATINGS)
        duration = rng.randint(3, 7)
        rate = rng.choice(_RENTAL_RATES)
        cost = rng.randint(9, 29) + 0.99
        length = rng.randint(46, 185)
        features = ",".join(f for f in _FEATURES if rng.random() < 0.45) or rng.choice(_FEATURES)
        release_year = str(as_of.year - rng.randint(1, 40))
        category_id = rng.randint(1, len(_CATEGORIES))
        original_language = rng.randint(2, len(_LANGUAGES)) if rng.random() < 0.06 else None
        actor_ids = rng.sample(range(1, ACTOR_COUNT + 1), rng.randint(3, 8))
        popularity = rng.lognormvariate(0.0, 0.5)
        scenario = _SCENARIO_FILMS.get(film_id)
        if scenario is not None:
            title, rating, duration = scenario.title, scenario.rating, scenario.rental_duration
            rate, cost = scenario.rental_rate, scenario.replacement_cost
            description = plant.get("film_description", description)
        tables.add(
            "film", film_id, title, description, release_year, 1, original_language, duration,
            rate, length, cost, rating, features, loaded,
        )  # fmt: skip
        tables.add("film_text", film_id, title, description)
        tables.add("film_category", film_id, category_id, loaded)
        for actor_id in sorted(actor_ids):
            tables.add("film_actor", actor_id, film_id, loaded)
        films.append(
            _Film(film_id, duration, _cents(rate), _cents(cost), popularity, scenario is not None)
        )
    return films


def _stock_inventory(
    seed: int, films: Sequence[_Film], tables: _Tables, loaded: str
) -> dict[int, list[tuple[int, int]]]:
    """Copies per film: ``film_id -> [(inventory_id, store_id), ...]``."""
    rng = _stream(seed, "inventory")
    items: dict[int, list[tuple[int, int]]] = {}
    inventory_id = 0
    for film in films:
        plan, copies = rng.random(), rng.choice((1, 2, 2, 3, 3, 3, 4))
        other = rng.choice((1, 2, 2, 3, 3, 3, 4))
        if plan < 0.04:
            stock = (0, 0)  # in the catalog, on no shelf
        elif plan < 0.11:
            stock = (copies, 0)
        elif plan < 0.18:
            stock = (0, copies)
        else:
            stock = (copies, other)
        scenario = _SCENARIO_FILMS.get(film.film_id)
        if scenario is not None:
            stock = scenario.copies
        items[film.film_id] = []
        for store_id, count in enumerate(stock, start=1):
            for _ in range(count):
                inventory_id += 1
                tables.add("inventory", inventory_id, film.film_id, store_id, loaded)
                items[film.film_id].append((inventory_id, store_id))
    return items


@dataclass
class _Rental:
    start: int  # seconds relative to the start of the business date (negative: the past)
    inventory_id: int
    customer_id: int
    store_id: int
    returned: int | None
    payments: list[tuple[int, int]]  # (seconds, cents)


def _simulate_rentals(
    seed: int,
    films: Sequence[_Film],
    customers: Sequence[_Customer],
    items: Mapping[int, Sequence[tuple[int, int]]],
    tables: _Tables,
    fees: _FeePolicy,
    stamp: Callable[[int], str],
) -> None:
    rng = _stream(seed, "rentals")
    lost_after = policy_rules().late_fees.lost_after_days_past_due * _DAY

    # Who may rent in a given window: nobody deactivated recently, and scenario customers only
    # through their planted rentals in the last _SCENARIO_QUIET_DAYS.
    def pool(store_id: int, days_ago: int) -> tuple[list[int], list[float]]:
        chosen = [
            c
            for c in customers
            if c.store_id == store_id
            and (c.active or days_ago > _INACTIVE_QUIET_DAYS)
            and (not c.planted or days_ago > _SCENARIO_QUIET_DAYS)
        ]
        ids = [c.customer_id for c in chosen]
        cumulative: list[float] = []
        total = 0.0
        for c in chosen:
            total += c.weight
            cumulative.append(total)
        return ids, cumulative

    windows = (_SCENARIO_QUIET_DAYS, _INACTIVE_QUIET_DAYS, HISTORY_DAYS + 1)
    pools = {(s, w): pool(s, w) for s in (1, 2) for w in windows}
    profiles = {c.customer_id: c.profile for c in customers}
    rentals: list[_Rental] = []

    for film in films:
        mean_gap_days = 108.0 / film.popularity
        for inventory_id, store_id in items[film.film_id]:
            day = -HISTORY_DAYS + rng.randrange(0, 21)
            while True:
                start = day * _DAY + rng.randint(10 * _HOUR, 22 * _HOUR - 1)
                days_ago = -day
                window = next(w for w in windows if days_ago <= w)
                shop = store_id if rng.random() < 0.85 else 3 - store_id
                ids, cumulative = pools[(shop, window)]
                customer_id = rng.choices(ids, cum_weights=cumulative)[0]
                profile = profiles[customer_id]
                due = start + film.duration * _DAY
                draw = rng.random()
                never_back, late = _PROFILE_ODDS[profile]
                returned: int | None
                if draw < never_back and not film.reserved:
                    returned = None
                elif draw < never_back + late:
                    extra_days = 25 if rng.random() < 0.04 else (9 if profile == "late" else 5)
                    returned = due + rng.randint(15 * 60, extra_days * _DAY)
                else:
                    returned = start + rng.randint(2 * _HOUR, film.duration * _DAY - 600)
                settled = returned if returned is not None else due + lost_after
                if film.reserved and settled >= -_SCENARIO_QUIET_DAYS * _DAY:
                    break  # keep scenario copies free for the planted rentals
                if returned is not None and returned >= 0:
                    returned = None  # not back yet at the start of the business date
                rental = _Rental(start, inventory_id, customer_id, store_id, returned, [])
                _settle(rental, film, fees, lost_after)
                rentals.append(rental)
                if returned is None:
                    break  # out, overdue or lost: this copy is off the shelf
                day = math.ceil(returned / _DAY) + int(rng.expovariate(1.0 / mean_gap_days))
                if day >= 0:
                    break

    films_by_id = {film.film_id: film for film in films}
    for customer, planted in _SCENARIO_RENTALS:
        film = films_by_id[planted.film.film_id]
        inventory_id = next(i for i, s in items[film.film_id] if s == planted.store_id)
        hours, minutes = (int(part) for part in planted.rented_at.split(":"))
        start = -planted.rented_days_ago * _DAY + hours * _HOUR + minutes * 60
        returned = (
            None
            if planted.returned_after is None
            else start + int(planted.returned_after.total_seconds())
        )
        rental = _Rental(start, inventory_id, customer.customer_id, planted.store_id, returned, [])
        _settle(rental, film, fees, lost_after)
        if planted.duplicate_payment:
            rental.payments.append(rental.payments[0])
        rentals.append(rental)

    rentals.sort(key=lambda r: (r.start, r.inventory_id))
    payments: list[tuple[int, int, int, int, int]] = []
    for rental_id, rental in enumerate(rentals, start=1):
        returned_text = None if rental.returned is None else stamp(rental.returned)
        tables.add(
            "rental", rental_id, stamp(rental.start), rental.inventory_id, rental.customer_id,
            returned_text, rental.store_id, returned_text or stamp(rental.start),
        )  # fmt: skip
        for when, cents in rental.payments:
            payments.append((when, rental_id, rental.customer_id, rental.store_id, cents))
    payments.sort()
    for payment_id, (when, rental_id, customer_id, staff_id, cents) in enumerate(payments, 1):
        paid = stamp(when)
        tables.add("payment", payment_id, customer_id, staff_id, rental_id, cents / 100, paid, paid)


def _settle(rental: _Rental, film: _Film, fees: _FeePolicy, lost_after: int) -> None:
    """Record the payment of a finished rental: at the return, or when the copy is lost."""
    due = rental.start + film.duration * _DAY
    if rental.returned is not None:
        fee = fees.late_fee_cents(rental.returned - due, film.replacement_cents)
        rental.payments.append((rental.returned, film.rate_cents + fee))
    elif due + lost_after <= 0:
        rental.payments.append((due + lost_after, film.rate_cents + film.replacement_cents))


def _schema_sql() -> str:
    schema = files("mediavault.tools.business_db").joinpath(SCHEMA_RESOURCE)
    return schema.read_text(encoding="utf-8")


def _write(path: Path, tables: _Tables, as_of: date) -> None:
    with closing(sqlite3.connect(path, isolation_level=None)) as connection:
        # A throw-away file until it is renamed into place: no journal, no fsync per page.
        connection.execute("PRAGMA journal_mode = OFF")
        connection.execute("PRAGMA synchronous = OFF")
        connection.executescript(_schema_sql())
        connection.execute("BEGIN")
        for table in SAKILA_TABLES:
            rows = tables.rows[table]
            if rows:
                marks = ",".join("?" * len(rows[0]))
                connection.executemany(f"INSERT INTO {table} VALUES ({marks})", rows)
        connection.execute("COMMIT")
        connection.execute(f"PRAGMA user_version = {stamp_value(as_of)}")
        connection.execute(f"PRAGMA application_id = {DEMO_APPLICATION_ID}")


def build_demo_database(
    path: Path,
    *,
    seed: int = 42,
    as_of: date | None = None,
    plant: dict[str, str] | None = None,
    overwrite: bool = False,
) -> DemoDatabaseSummary:
    """Write a fresh demo database to ``path`` and stamp ``as_of`` (default: today) into it.

    The file appears complete or not at all: it is built beside ``path`` and renamed into place.
    An existing ``path`` is replaced only with ``overwrite=True`` (else FileExistsError).
    ``plant`` puts free text into the fields listed in :data:`PLANT_TARGETS` (red-team data).
    """
    started = time.perf_counter()
    path = Path(path)
    as_of = as_of or date.today()
    plant = dict(plant or {})
    unknown = sorted(set(plant) - set(PLANT_TARGETS))
    if unknown:
        raise ValueError(f"unknown plant target(s) {unknown}; known: {sorted(PLANT_TARGETS)}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")

    tables = _generate(seed, as_of, plant)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=".tmp", dir=path.parent
    )
    os.close(descriptor)
    try:
        _write(Path(temporary), tables, as_of)
        if path.exists() and not overwrite:  # appeared while we were building
            raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return DemoDatabaseSummary(
        path=path,
        seed=seed,
        as_of=as_of,
        row_counts={table: len(tables.rows[table]) for table in SAKILA_TABLES},
        seconds=time.perf_counter() - started,
    )
