"""How the offline rules read what a customer asks: sentence by sentence, abstaining when unsure.

The new message (never the quoted history) is split into sentences. Each one is a courtesy
("Hi", "Thanks, Ana"), context (a statement that asks nothing), or an ask whose intent the
keyword rules recognise. A sentence that asks something the rules do not recognise is
*unaccounted*: the rules model then escalates instead of answering something else.

Film titles are matched against the titles the investigation found (the sender's rentals and
the catalog rows) with rapidfuzz, so typos, partial titles and any case still resolve; two
different films matching equally well is ambiguity, never a guess.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from rapidfuzz import fuzz

#: Sentences that carry no request: greetings, thanks, sign-offs, pleasantries.
_COURTESY = re.compile(
    r"^(?:hi|hello|hey|hiya|yo|dear|good (?:morning|afternoon|evening)|greetings|"
    r"thanks?|thank you|thx|ty|many thanks|cheers|regards|best|kind regards|warm regards|"
    r"sincerely|all the best|take care|ta|xx+|hope (?:you|all|this|everyone)\b|"
    r"have a (?:good|great|nice)|appreciate|much appreciated|sorry to bother|"
    r"(?:just )?a quick (?:one|question|q)\b|quick (?:one|question|q)\b|sent from my|"
    # Passing thanks on is a courtesy, not a request the reply must answer.
    r"please pass (?:this|it|that) (?:on|along)\b|"
    r"please (?:thank|pass on (?:my|our) thanks|say thanks|tell (?:her|him|them|the staff) "
    r"(?:thanks|thank you)))\b",
    re.I,
)

#: A sentence that asks or requests something.
_QUESTION_START = re.compile(
    r"^(?:and |also |so |but |oh |ok(?:ay)? |um+ |p\.?s\.? ?)*(?:can|could|would|will|do|does|"
    r"did|is|are|was|were|am|have|has|when|what|whats|what's|why|how|where|which|who|whose|"
    r"should|shall|any chance|is there)\b", re.I)
_REQUEST = re.compile(
    r"\b(?:please|pls|plz|let me know|tell me|i(?:'d| would) like to know|i want to know|"
    r"i need (?:to know|you to)|wondering|wonder if|explain|check (?:on|for|if|whether|the|my)|"
    r"confirm|can you|could you|would you|any idea)\b", re.I)

# Words too common to name a film on their own (a title word search would match half the
# catalog).
_COMMON_WORDS = frozenset({
    "about", "above", "after", "again", "against", "all", "also", "although", "always", "among",
    "another", "any", "anyone", "anything", "around", "back", "because", "been", "before",
    "being", "below", "between", "both", "bring", "brought", "call", "came", "cannot", "charge",
    "charged", "could", "days", "didn", "does", "doing", "done", "down", "during", "each",
    "early", "either", "else", "email", "enough", "even", "ever", "every", "film", "films",
    "first", "from", "gave", "give", "going", "gone", "good", "got", "great", "have", "having",
    "hello", "here", "hers", "hope", "however", "into", "just", "keep", "know", "last", "late",
    "later", "like", "little", "long", "look", "looking", "made", "make", "many", "maybe",
    "might", "mine", "more", "morning", "most", "movie", "movies", "much", "must", "myself",
    "need", "never", "next", "night", "nothing", "office", "only", "other", "ours", "over",
    "please", "pretty", "quick", "really", "rent", "rental", "rentals", "rented", "return",
    "returned", "right", "same", "says", "said", "should", "since", "some", "something", "soon",
    "still", "store", "stores", "such", "sure", "take", "than", "thank", "thanks", "that",
    "their", "them", "then", "there", "these", "they", "thing", "things", "think", "this",
    "those", "though", "through", "time", "today", "tomorrow", "tonight", "under", "until",
    "very", "want", "wanted", "week", "weekend", "well", "were", "what", "when", "where",
    "whether", "which", "while", "will", "wish", "with", "without", "would", "yesterday",
    "your", "yours",
})

# A request written as a fragment rather than a question ("Also Silent Zephyr due date.").
_FRAGMENT_ASK = re.compile(r"^(?:also|and|plus|oh and|p\.?s\.?)\b(?!.*\b(?:i|we)\b)", re.I)

_SIGN_OFF_NAME = re.compile(r"^[A-Z][a-z]+(?: [A-Z][a-z]+)?\.?$|^[A-Z]\.?$|^-\s*\w+$")


@dataclass
class Sentence:
    """One sentence of the new message and how the rules read it."""

    text: str
    kind: str  # "courtesy", "context" or "ask"
    intent: str | None = None


@dataclass
class MessageReading:
    """The sentences of the new message, the asks among them and what could not be read."""

    sentences: list[Sentence] = field(default_factory=list)

    @property
    def asks(self) -> list[Sentence]:
        return [s for s in self.sentences if s.kind == "ask" and s.intent]

    @property
    def unaccounted(self) -> list[Sentence]:
        """Sentences that ask something the rules did not recognise."""
        return [s for s in self.sentences if s.kind == "ask" and not s.intent]

    def intents(self) -> list[str]:
        return list(dict.fromkeys(s.intent for s in self.asks if s.intent))


#: Reads one sentence's intent (None: not recognised).
SentenceClassifier = Callable[[str], str | None]


def split_sentences(text: str) -> list[str]:
    """Sentences of a message: split at sentence ends, line breaks and list markers."""
    pieces = re.split(r"(?<=[.!?])\s+|\n+|(?:^|\s)\d\)\s+", text)
    return [p.strip(" \t-*•") for p in pieces if p and p.strip(" \t-*•")]


def is_courtesy(sentence: str) -> bool:
    if _COURTESY.search(sentence.strip()):
        # "Thanks for the late fee explanation, but why ..." still asks something.
        rest = _COURTESY.sub("", sentence.strip(), count=1)
        return "?" not in sentence and not _REQUEST.search(rest)
    words = sentence.split()
    return len(words) <= 3 and "?" not in sentence and bool(_SIGN_OFF_NAME.match(sentence.strip()))


def is_ask(sentence: str) -> bool:
    stripped = sentence.strip()
    return stripped.endswith("?") or bool(_QUESTION_START.match(stripped)) or bool(
        _REQUEST.search(stripped))


def read_message(text: str, classify: SentenceClassifier) -> MessageReading:
    """Read each sentence of ``text`` (the new message) with ``classify`` for intents."""
    reading = MessageReading()
    for sentence in split_sentences(text):
        if is_courtesy(sentence):
            reading.sentences.append(Sentence(sentence, "courtesy"))
            continue
        intent = classify(sentence)
        if is_ask(sentence) or (intent is not None and _FRAGMENT_ASK.match(sentence)):
            reading.sentences.append(Sentence(sentence, "ask", intent))
        elif intent is not None:
            # A statement with a recognised request in it ("I need my late fee explained").
            reading.sentences.append(Sentence(sentence, "context", intent))
        else:
            reading.sentences.append(Sentence(sentence, "context"))
    return reading




# ---------------------------------------------------------------------------- film titles

#: A title must match at least this well (rapidfuzz 0..100) to count as named.
TITLE_MATCH = 88


def title_search_words(text: str, spans: Iterable[str]) -> list[str]:
    """Words worth a catalog search: those of title-shaped spans, else the rarer words."""
    words = [w.lower() for span in spans for w in re.findall(r"[A-Za-z]{4,}", span)]
    # Customers often type titles in lower case: the rarer words of the text count too.
    words += [w.lower() for w in re.findall(r"[A-Za-z]{5,}", text)]
    unique = [w for w in dict.fromkeys(words) if w not in _COMMON_WORDS]
    return unique[:14]


def title_score(title: str, text: str) -> float:
    """How well ``title`` appears in ``text``, tolerant of case, typos and extra words."""
    folded_title = " ".join(title.lower().split())
    folded_text = " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())
    if not folded_title or len(folded_title) < 4:
        return 0.0
    if re.search(rf"\b{re.escape(folded_title)}\b", folded_text):
        return 100.0
    return float(fuzz.partial_ratio(folded_title, folded_text))


def named_titles(titles: Iterable[str], text: str) -> list[str]:
    """The titles ``text`` names, best first; equally good ones in the order they are named."""
    folded = text.lower()
    scored = [(title_score(t, text), t) for t in dict.fromkeys(titles)]

    def position(title: str) -> int:
        found = folded.find(title.lower())
        if found < 0:
            words = [folded.find(w) for w in title.lower().split() if folded.find(w) >= 0]
            found = min(words) if words else len(folded)
        return found

    ranked = sorted(((s, t) for s, t in scored if s >= TITLE_MATCH),
                    key=lambda item: (-item[0], position(item[1])))
    return [t for _s, t in ranked]


def ambiguous_titles(titles: Sequence[str], text: str) -> list[str]:
    """Titles that match only as well as another title for the same words (no exact match):
    the customer could mean either, so the rules must not pick one."""
    scored = [(title_score(t, text), t) for t in dict.fromkeys(titles)]
    fuzzy = [(s, t) for s, t in scored if TITLE_MATCH <= s < 100]
    exact = [t for s, t in scored if s == 100]
    if exact or len(fuzzy) < 2:
        return []
    best = max(s for s, _ in fuzzy)
    tied = [t for s, t in fuzzy if s == best]
    return tied if len(tied) > 1 else []


__all__ = [
    "TITLE_MATCH",
    "MessageReading",
    "Sentence",
    "SentenceClassifier",
    "ambiguous_titles",
    "is_ask",
    "is_courtesy",
    "named_titles",
    "read_message",
    "split_sentences",
    "title_score",
    "title_search_words",
]
