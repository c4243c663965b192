"""parse_duration and DURATION_PATTERN: ISO 8601 durations, weeks to seconds.

The oracle below reads the grammar the slow, obvious way (tokens, then rules), so the
hand-written regex is checked against the rules it encodes, not against itself.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from fractions import Fraction

import jsonschema
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from statewise.spec.durations import DURATION_PATTERN, parse_duration

EXAMPLE_FORMS = "expected a form such as 'PT5M', 'PT0.5S', 'P1DT2H' or 'P2W'"
UNITS = {"W": 604_800, "D": 86_400, "H": 3_600, "M": 60, "S": 1}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT5M", 300.0),
        ("PT1S", 1.0),
        ("PT1H", 3_600.0),
        ("P1D", 86_400.0),
        ("P2W", 1_209_600.0),
        ("P1DT2H", 93_600.0),
        ("PT1H30S", 3_630.0),  # any subset: minutes may be left out
        ("P1DT30M", 88_200.0),
        ("P1DT1H2M3S", 90_123.0),
        ("PT0.5S", 0.5),
        ("PT0.1S", 0.1),  # the float nearest 0.1: summed as integers, divided once
        ("PT1.5H", 5_400.0),
        ("PT1H1.5M", 3_690.0),
        ("P1.5D", 129_600.0),
        ("P0.5W", 302_400.0),
        ("P1DT1H2M3.25S", 90_123.25),
        ("PT90M", 5_400.0),  # no carry rules: 90 minutes is fine
        ("PT0S", 0.0),  # zero parses; a timeout's schema and loader refuse it
        ("P0D", 0.0),
        ("PT007S", 7.0),
        ("PT0.000001S", 1e-6),
        ("P10000W", 6_048_000_000.0),
    ],
)
def test_valid_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert re.search(DURATION_PATTERN, text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "P",
        "PT",
        "P1DT",  # T with no time after it
        "T5M",
        "5M",
        "PT5",  # a number with no designator
        "pt5m",  # designators are uppercase
        "Pt5M",
        "PT5m",
        "PT5M ",
        " PT5M",
        "PT5M\n",  # $ would let this one through
        "-PT5M",  # no negative durations
        "+PT5M",
        "PT1.5H30M",  # a fraction only on the smallest component
        "PT1.5M30S",
        "P1.5DT1H",
        "PT.5S",
        "PT5.S",
        "PT1..5S",
        "PT1.5.5S",
        "PT1e3S",
        "PT0,5S",  # ISO 8601's decimal comma: not taken, "." only
        "PT30S5M",  # out of order
        "PT5M1H",
        "P1DT1D",
        "PT1H1H",  # repeated
        "P1D1D",
        "P1W1D",  # weeks stand alone
        "P1WT1H",
        "P1H",  # hours need the T
        "PT1D",
        "PT1W",
        "PT\u0661S",  # an Arabic-Indic digit one: ASCII digits only
        "PT5MT",
        "P T5M",
        "5 minutes",
    ],
)
def test_malformed_durations_show_the_text_and_the_expected_form(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{text!r} is not an ISO 8601 duration")) as e:
        parse_duration(text)
    assert EXAMPLE_FORMS in str(e.value)
    assert not re.search(DURATION_PATTERN, text)


@pytest.mark.parametrize("text", ["P1Y", "P1M", "P1Y2M", "P1Y2M10DT2H30M", "P0.5Y", "P1MT1H"])
def test_years_and_months_are_refused_with_the_reason(text: str) -> None:
    with pytest.raises(ValueError, match=r"uses years or months, whose length varies") as e:
        parse_duration(text)
    assert f"duration {text!r}" in str(e.value)
    assert "use days or weeks instead, e.g. 'P30D' or 'P4W'" in str(e.value)


@pytest.mark.parametrize(
    "text",
    [
        "P" + "9" * 400 + "D",  # beyond a float
        "PT" + "9" * 400 + ".5S",
        "P" + "9" * 5000 + "D",  # beyond int's default 4300-digit str limit
        "PT1." + "0" * 5000 + "S",
    ],
)
def test_absurdly_long_durations_are_refused_briefly(text: str) -> None:
    with pytest.raises(ValueError, match=r"is too large to parse") as e:
        parse_duration(text)
    message = str(e.value)
    assert f"({len(text)} characters)" in message
    assert len(message) < 150  # the text is cut short, not printed in full


def test_a_long_malformed_text_is_cut_short_in_the_message() -> None:
    with pytest.raises(ValueError, match=r"\.\.\. \(1000 characters\) is not an ISO") as e:
        parse_duration("x" * 1000)
    assert len(str(e.value)) < 200


@pytest.mark.parametrize("value", [300, 5.0, None, b"PT5M", ["PT5M"]])
def test_a_non_string_is_a_type_error(value: object) -> None:
    with pytest.raises(TypeError, match="a duration must be a string such as 'PT5M'"):
        parse_duration(value)  # type: ignore[arg-type]


# -- round trip: format a duration, parse it, compare with exact arithmetic ------------


@st.composite
def durations(draw: st.DrawFn) -> tuple[str, Fraction]:
    """An ISO 8601 duration text and its exact number of seconds."""
    if draw(st.booleans()):
        units = ["W"]
    else:
        units = draw(
            st.lists(st.sampled_from("DHMS"), min_size=1, max_size=4, unique=True).map(
                lambda us: sorted(us, key="DHMS".index)
            )
        )
    text, seconds = "P", Fraction(0)
    for i, unit in enumerate(units):
        if unit in "HMS" and "T" not in text:
            text += "T"
        whole = draw(st.integers(0, 10**6))
        number, value = str(whole), Fraction(whole)
        if i == len(units) - 1 and draw(st.booleans()):  # the smallest component only
            digits = draw(st.text("0123456789", min_size=1, max_size=9))
            number += "." + digits
            value += Fraction(int(digits), 10 ** len(digits))
        text += number + unit
        seconds += value * UNITS[unit]
    return text, seconds


@given(durations())
@example(("PT0.1S", Fraction(1, 10)))
@example(("P1DT0.000001S", 86_400 + Fraction(1, 10**6)))
def test_round_trip_is_exact_to_the_float(case: tuple[str, Fraction]) -> None:
    text, seconds = case
    assert parse_duration(text) == float(seconds)  # both correctly rounded: equal


# -- the pattern accepts exactly what the parser accepts -------------------------------


def oracle(text: str) -> bool:
    """The grammar, read token by token: is ``text`` a duration parse_duration takes?"""
    if not text.startswith("P"):
        return False
    date, has_time, time = text[1:].partition("T")
    if has_time and not time:
        return False
    found: list[tuple[str, bool]] = []  # (designator, has a fraction), in order
    for part, allowed in ((date, "WD"), (time, "HMS")):
        rest = part
        while rest:
            number = re.match(r"[0-9]+([.][0-9]+)?", rest, re.ASCII)
            if number is None or rest[number.end() : number.end() + 1] not in set(allowed):
                return False
            found.append((rest[number.end()], number.group(1) is not None))
            rest = rest[number.end() + 1 :]
    units = [u for u, _ in found]
    in_order = units == sorted(set(units), key="WDHMS".index)  # and no repeats
    weeks_alone = "W" not in units or units == ["W"]
    fraction_last = not any(fraction for _, fraction in found[:-1])
    return bool(found) and in_order and weeks_alone and fraction_last


def accepts(text: str) -> bool:
    try:
        parse_duration(text)
    except ValueError:
        return False
    return True


PIECES = ["P", "T", "W", "D", "H", "M", "S", "Y", "0", "1", "25", ".", ",", "-", " ", "\n", "t"]
near_durations = st.one_of(
    st.lists(st.sampled_from(PIECES), max_size=10).map("".join),
    st.lists(st.sampled_from(PIECES), max_size=10).map(lambda ps: "P" + "".join(ps)),
    durations().map(lambda case: case[0]),
)


@given(near_durations)
@example("PT5M\n")
@example("P1W1D")
@example("PT1.5H30M")
def test_pattern_parser_and_grammar_agree(text: str) -> None:
    verdict = oracle(text)
    assert (re.search(DURATION_PATTERN, text) is not None) == verdict
    assert accepts(text) == verdict


SAMPLES = [
    "PT5M",
    "P1DT2H",
    "PT0,5S",
    "P2W",
    "PT0.5S",
    "PT1.5H30M",
    "P1W1D",
    "PT5M\n",
    "P1Y",
    "pt5m",
    "PT",
    "P1DT1H2M3.25S",
    "xPT5M",
]


def test_the_pattern_works_as_a_json_schema_pattern() -> None:
    validator = jsonschema.Draft202012Validator({"type": "string", "pattern": DURATION_PATTERN})
    verdicts = {text: validator.is_valid(text) for text in SAMPLES}
    assert verdicts == {text: accepts(text) for text in SAMPLES}
    assert sum(verdicts.values()) == 5


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node for an ECMA 262 engine")
def test_the_pattern_means_the_same_in_ecma_262() -> None:
    # Editors (the YAML language server) check the schema's patterns with JavaScript
    # regexes, with and without the "u" flag: the pattern must mean the same there.
    script = (
        "const [p, texts] = JSON.parse(process.argv[1]);"
        "const out = texts.map(t => [new RegExp(p).test(t), new RegExp(p, 'u').test(t)]);"
        "console.log(JSON.stringify(out));"
    )
    node = shutil.which("node")
    assert node is not None
    proc = subprocess.run(
        [node, "-e", script, json.dumps([DURATION_PATTERN, SAMPLES])],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(proc.stdout) == [[accepts(t), accepts(t)] for t in SAMPLES]
