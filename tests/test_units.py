import pytest

from guidetrack.units import SAMPLE_RATE, parse_duration, parse_level, to_samples


@pytest.mark.parametrize("text, seconds", [
    (3, 3.0), (2.5, 2.5), ("4s", 4.0), ("1.5s", 1.5), ("2m", 120.0), ("1m30s", 90.0),
    ("10m", 600.0), ("1h", 3600.0), ("1h 2m 3s", 3723.0), ("500ms", 0.5), ("7", 7.0), (0, 0.0),
])
def test_parse_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "abc", "4x", "1m1m", "-3s", -1, True, None, [1], float("inf"), "4s 4s", 10**400])
def test_parse_duration_rejects(bad):
    with pytest.raises((ValueError, OverflowError)):
        parse_duration(bad)


def test_parse_duration_limit():
    with pytest.raises(ValueError, match="48 hours"):
        parse_duration("49h")


@pytest.mark.parametrize("text, db", [(-18, -18.0), ("-18 dB", -18.0), ("-6db", -6.0), ("3", 3.0)])
def test_parse_level(text, db):
    assert parse_level(text) == db


@pytest.mark.parametrize("bad", ["loud", "-18 dBFS x", True, -500])
def test_parse_level_rejects(bad):
    with pytest.raises(ValueError):
        parse_level(bad)


def test_samples_are_exact_at_the_edges():
    assert to_samples(1.0) == SAMPLE_RATE
    assert to_samples(0.5) == SAMPLE_RATE // 2


def test_timestamps_for_transcripts_and_chapters():
    from guidetrack.units import timestamp, to_ms

    assert to_ms(44_100 * 3_725 + 44_099) == 3_725_999  # rounded down, never ahead of the audio
    assert timestamp(3_725_999) == "01:02:05.999"
    assert timestamp(61_005, ",") == "00:01:01,005"


def test_clock_times_read_as_people_write_them():
    from guidetrack.units import SAMPLE_RATE, format_clock

    assert [format_clock(round(s * SAMPLE_RATE)) for s in (600, 4.7, 59.96, 3600, 8 * 3600, 3725.26, 0)] == \
        ["10:00", "0:04.7", "1:00", "1:00:00", "8:00:00", "1:02:05.3", "0:00"]
