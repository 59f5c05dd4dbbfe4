"""Embedded translation task: dates written in many ways -> ISO 8601 (seeded, no downloads).

    "the twenty-first of March, nineteen ninety-nine"  -> "1999-03-21"
    "3/21/1999", "21.03.1999", "Sunday, March 21, 1999" -> "1999-03-21"
    "march of two thousand and five"                   -> "2005-03"
    "the year eighteen oh seven"                        -> "1807"

The task needs what translation needs: reordering (day-month-year and month-day-year sources both
become year-month-day), rewriting words as digits, and variable output length (ISO's reduced
precisions: a day "YYYY-MM-DD", a month "YYYY-MM" or a year "YYYY"). Everything is drawn from
``random.Random(seed)``, so a seed always gives the same pairs.
"""

from __future__ import annotations

import calendar
import datetime
import random
import zlib
from collections.abc import Callable

FIRST_YEAR, LAST_YEAR = 1800, 2099
MONTHS = [calendar.month_name[m] for m in range(1, 13)]
WEEKDAYS = list(calendar.day_name)
ABBREVIATION_LENGTH = 3
SMALL = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
         "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
IRREGULAR_ORDINALS = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
                      "nine": "ninth", "twelve": "twelfth"}
ORDINAL_SUFFIXES = {1: "st", 2: "nd", 3: "rd"}
TEEN_RANGE = range(11, 14)  # 11th, 12th, 13th
#: Share of examples at each ISO precision.
PRECISION_WEIGHTS = {"day": 0.7, "month": 0.2, "year": 0.1}
#: Draws per example before giving up on finding one outside ``exclude``.
MAX_DRAWS = 1000
#: Sources are split by a stable hash into this many buckets: one for val, one for test, the rest train.
SPLIT_BUCKETS = 20
VAL_BUCKET, TEST_BUCKET = 0, 1


def cardinal(number: int) -> str:
    """0..99 in words: 7 -> "seven", 42 -> "forty-two"."""
    if number < len(SMALL):
        return SMALL[number]
    tens, ones = divmod(number, 10)
    return TENS[tens] if ones == 0 else f"{TENS[tens]}-{SMALL[ones]}"


def ordinal(number: int) -> str:
    """1..99 as an ordinal in words: 21 -> "twenty-first", 30 -> "thirtieth"."""
    words = cardinal(number)
    head, _, last = words.rpartition("-")
    if last in IRREGULAR_ORDINALS:
        last = IRREGULAR_ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return f"{head}-{last}" if head else last


def ordinal_suffix(number: int) -> str:
    """1 -> "1st", 12 -> "12th", 23 -> "23rd"."""
    suffix = "th" if number % 100 in TEEN_RANGE else ORDINAL_SUFFIXES.get(number % 10, "th")
    return f"{number}{suffix}"


def year_words(year: int, rng: random.Random) -> str:
    """A year as people say it: 1999 "nineteen ninety-nine", 1905 "nineteen oh five", 1900 "nineteen
    hundred", 2005 "two thousand (and) five", 2024 "twenty twenty-four" or "two thousand (and) twenty-four"."""
    century, rest = divmod(year, 100)
    thousands_form = century % 10 == 0 and (rest < 10 or rng.random() < 0.5)
    if thousands_form:
        thousands = f"{SMALL[century // 10]} thousand"
        return thousands if rest == 0 else f"{thousands}{rng.choice([' ', ' and '])}{cardinal(rest)}"
    if rest == 0:
        return f"{cardinal(century)} hundred"
    return f"{cardinal(century)} {'oh ' + SMALL[rest] if rest < 10 else cardinal(rest)}"


def month_name(month: int, rng: random.Random) -> str:
    """ "March", "march", "MARCH", "Mar" or "Mar."."""
    name = MONTHS[month - 1]
    if rng.random() < 0.25:
        return name[:ABBREVIATION_LENGTH] + rng.choice(["", "."])
    return rng.choice([name, name.lower(), name.upper()])


def _numeric(number: int, rng: random.Random) -> str:
    return f"{number:02d}" if rng.random() < 0.5 else str(number)


def _day(day: int, rng: random.Random) -> str:
    return rng.choice([str(day), ordinal_suffix(day)])


def _capitalized(text: str, rng: random.Random) -> str:
    return text[0].upper() + text[1:] if rng.random() < 0.5 else text


# Day formats: (date, rng) -> source text.
def _us_numeric(date: datetime.date, rng: random.Random) -> str:
    return f"{_numeric(date.month, rng)}/{_numeric(date.day, rng)}/{date.year}"


def _european_numeric(date: datetime.date, rng: random.Random) -> str:
    return f"{_numeric(date.day, rng)}.{_numeric(date.month, rng)}.{date.year}"


def _month_day_year(date: datetime.date, rng: random.Random) -> str:
    return f"{month_name(date.month, rng)} {_day(date.day, rng)}{rng.choice([',', ''])} {date.year}"


def _day_month_year(date: datetime.date, rng: random.Random) -> str:
    day = f"{rng.choice(['', 'the '])}{_day(date.day, rng)}{rng.choice([' ', ' of '])}"
    return f"{day}{month_name(date.month, rng)}{rng.choice([',', ''])} {date.year}"


def _weekday_month_day_year(date: datetime.date, rng: random.Random) -> str:
    weekday = rng.choice([WEEKDAYS[date.weekday()], WEEKDAYS[date.weekday()][:ABBREVIATION_LENGTH]])
    return f"{weekday}, {month_name(date.month, rng)} {date.day}, {date.year}"


def _spoken_day_first(date: datetime.date, rng: random.Random) -> str:
    month = month_name(date.month, rng).rstrip(".")
    return _capitalized(f"the {ordinal(date.day)} of {month}, {year_words(date.year, rng)}", rng)


def _spoken_month_first(date: datetime.date, rng: random.Random) -> str:
    month = month_name(date.month, rng).rstrip(".")
    return f"{month} {rng.choice(['', 'the '])}{ordinal(date.day)}, {year_words(date.year, rng)}"


# Month formats.
def _month_year(date: datetime.date, rng: random.Random) -> str:
    return f"{month_name(date.month, rng)} {date.year}"


def _spoken_month_year(date: datetime.date, rng: random.Random) -> str:
    return f"{month_name(date.month, rng).rstrip('.')}{rng.choice([' ', ' of '])}{year_words(date.year, rng)}"


def _numeric_month_year(date: datetime.date, rng: random.Random) -> str:
    return f"{_numeric(date.month, rng)}/{date.year}"


# Year formats.
def _spoken_year(date: datetime.date, rng: random.Random) -> str:
    return _capitalized(f"{rng.choice(['', 'the year ', 'in '])}{year_words(date.year, rng)}", rng)


def _numeric_year(date: datetime.date, rng: random.Random) -> str:
    return f"{rng.choice(['', 'the year ', 'in '])}{date.year}"


Format = Callable[[datetime.date, random.Random], str]
#: ISO precision -> (source formats, strftime pattern of the target).
FORMATS: dict[str, tuple[list[Format], str]] = {
    "day": (
        [
            _us_numeric,
            _european_numeric,
            _month_day_year,
            _day_month_year,
            _weekday_month_day_year,
            _spoken_day_first,
            _spoken_month_first,
        ],
        "%Y-%m-%d",
    ),
    "month": ([_month_year, _spoken_month_year, _numeric_month_year], "%Y-%m"),
    "year": ([_spoken_year, _numeric_year], "%Y"),
}


def random_date(rng: random.Random) -> datetime.date:
    first, last = datetime.date(FIRST_YEAR, 1, 1).toordinal(), datetime.date(LAST_YEAR, 12, 31).toordinal()
    return datetime.date.fromordinal(rng.randint(first, last))


def date_pair(rng: random.Random) -> tuple[str, str]:
    """One (written date, ISO date) pair."""
    precision = rng.choices(list(PRECISION_WEIGHTS), weights=list(PRECISION_WEIGHTS.values()))[0]
    formats, target_pattern = FORMATS[precision]
    date = random_date(rng)
    return rng.choice(formats)(date, rng), date.strftime(target_pattern)


def split_of(source: str) -> str:
    """The split a source sentence belongs to ("train", "val" or "test"), from a stable hash of its text:
    the splits never share a sentence, whatever their sizes."""
    bucket = zlib.crc32(source.encode("utf-8")) % SPLIT_BUCKETS
    return {VAL_BUCKET: "val", TEST_BUCKET: "test"}.get(bucket, "train")


def date_pairs(count: int, seed: int, split: str = "train") -> list[tuple[str, str]]:
    """``count`` (source, target) pairs drawn with ``seed`` among the sources of ``split`` (``split_of``)."""
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    rng = random.Random(seed)
    pairs = []
    for _ in range(count):
        for _ in range(MAX_DRAWS):
            source, target = date_pair(rng)
            if split_of(source) == split:
                break
        else:
            raise ValueError(f"could not draw a date of the {split!r} split in {MAX_DRAWS} tries")
        pairs.append((source, target))
    return pairs
