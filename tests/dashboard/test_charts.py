"""The ANC and levels charts: well-formed SVG with text alternatives, threshold bands where the
rule data puts them, dose changes, interruptions and the next due date."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, timedelta
from xml.etree.ElementTree import Element

import pytest

from smartapp.dashboard.charts import (
    HEIGHT,
    PLOT_BOTTOM,
    PLOT_TOP,
    AncChart,
    anc_chart,
    dose_steps,
    gaps_of,
    levels_chart,
)
from smartapp.dashboard.svg import LinearScale, date_ticks, value_step
from smartapp.domain import ClinicianStatement, LabResult, PatientRecord
from smartapp.rules.courses import clozapine_history
from smartapp.rules.ruleset import Profile
from tests.dashboard.helpers import (
    AS_OF,
    NS,
    ben_statement,
    clozapine,
    ctx,
    evaluated,
    find_all,
    lab,
    parse,
    record,
)

START = date(2025, 12, 1)


def weekly_ancs(values: Sequence[float], start: date = START) -> list[LabResult]:
    return [lab(f"anc{i}", "anc", start + timedelta(days=7 * i), v) for i, v in enumerate(values)]


def simple_record(statements: tuple[ClinicianStatement, ...] = ()) -> PatientRecord:
    values = [3000, 4000, 3500, 2800, 3100, 3300, 3600, 3900, 3700, 3400, 3200, 3000, 2900]
    return record(clozapine("m1", START, None, 300), *weekly_ancs(values), statements=statements)


def chart_of(rec: PatientRecord, profile: Profile = "us-fda") -> AncChart:
    return anc_chart(rec, evaluated(rec, profile), ctx(profile))


def thresholds(root: Element) -> dict[float, float]:
    lines = find_all(root, "line", "threshold")
    return {float(e.get("data-value") or "nan"): float(e.get("y1") or "nan") for e in lines}


def test_svg_is_well_formed_with_title_desc_and_aria() -> None:
    chart = chart_of(simple_record())
    assert chart.svg is not None
    root = parse(chart.svg)
    assert root.tag == f"{NS}svg"
    assert root.get("role") == "img"
    title, desc = root.find(f"{NS}title"), root.find(f"{NS}desc")
    assert title is not None and title.text == "Absolute neutrophil count (ANC) over time"
    assert desc is not None and "General table (L1 Table 1)" in (desc.text or "")
    assert "latest 2,900/µL on 2026-02-23" in (desc.text or "")
    assert root.get("aria-labelledby") == f"{title.get('id')} {desc.get('id')}"
    assert root.get("viewBox") == f"0 0 860 {HEIGHT}"


def test_general_table_threshold_lines_sit_at_the_scaled_values() -> None:
    root = parse(chart_of(simple_record()).svg or "")
    # peak 4,000 -> axis top: ceil(4,000 x 1.05 / 1,000) x 1,000 = 5,000
    y = LinearScale(0, 5000, PLOT_BOTTOM, PLOT_TOP)
    lines = thresholds(root)
    assert set(lines) == {1500, 1000, 500}
    for value, y1 in lines.items():
        assert y1 == pytest.approx(y(value), abs=0.01)
    assert lines[1500] == pytest.approx(183.4, abs=0.01)
    labels = [t.text for t in find_all(root, "text", "band-label")]
    assert labels == ["Normal ≥ 1,500", "Mild 1,000–1,499", "Moderate 500–999", "Severe < 500"]


def test_bands_are_told_apart_by_pattern_not_colour_alone() -> None:
    root = parse(chart_of(simple_record()).svg or "")
    bands = find_all(root, "rect", "band")
    fills = [b.get("fill") for b in bands]
    assert fills[0] == "none"  # normal: plain
    assert len(set(fills[1:])) == 3 and all(f and f.startswith("url(#") for f in fills[1:])
    patterns = {p.get("id"): p for p in find_all(root, "pattern")}
    widths = [int(patterns[f[5:-1]].get("width") or 0) for f in fills[1:]]  # type: ignore[index]
    assert widths == sorted(widths, reverse=True)  # worse band, denser hatching


def test_ben_statement_switches_to_the_ben_table() -> None:
    chart = chart_of(simple_record(statements=(ben_statement(),)))
    assert chart.table_label == "BEN table (L1 Table 2)"
    root = parse(chart.svg or "")
    assert set(thresholds(root)) == {1000, 500}
    labels = [t.text for t in find_all(root, "text", "band-label")]
    assert labels == ["BEN normal ≥ 1,000", "BEN neutropenia 500–999", "BEN severe < 500"]


def test_withdrawn_ben_statement_keeps_the_general_table() -> None:
    chart = chart_of(simple_record(statements=(ben_statement("false"),)))
    assert set(thresholds(parse(chart.svg or ""))) == {1500, 1000, 500}


def test_uk_profile_uses_the_neutrophil_traffic_lights() -> None:
    chart = chart_of(simple_record(), "uk-mhra")
    assert chart.title == "Neutrophil count over time"
    root = parse(chart.svg or "")
    assert set(thresholds(root)) == {2000, 1500}
    assert [t.text for t in find_all(root, "text", "band-label")] == [
        "Green ≥ 2,000",
        "Amber 1,500–1,999",
        "Red < 1,500",
    ]


def test_dose_changes_are_marked_with_mg_labels() -> None:
    rec = record(
        clozapine("m1", START, date(2025, 12, 15), 100),
        clozapine("m2", date(2025, 12, 15), None, 300),
        *weekly_ancs([3000] * 13),
    )
    chart = chart_of(rec)
    assert [(d.start, d.mg) for d in chart.doses] == [(START, 100), (date(2025, 12, 15), 300)]
    assert chart.doses[-1].end == AS_OF + timedelta(days=1)
    root = parse(chart.svg or "")
    markers = find_all(root, "polygon", "dose-change")
    assert [m.find(f"{NS}title").text.split(";")[0] for m in markers] == [  # type: ignore[union-attr]
        "Clozapine 100 mg/day from 2025-12-01",
        "Clozapine 300 mg/day from 2025-12-15",
    ]
    assert [t.text for t in find_all(root, "text", "dose-label")] == ["100 mg", "300 mg"]


def test_unknown_dose_says_so() -> None:
    chart = chart_of(record(clozapine("m1", START, None, None), *weekly_ancs([3000] * 13)))
    assert chart.doses == ()
    texts = [t.text for t in find_all(parse(chart.svg or ""), "text", "dose-label")]
    assert texts == ["no clozapine order with a readable dose"]


def test_interruptions_and_new_courses_are_shaded_and_labelled() -> None:
    rec = record(
        clozapine("old", date(2025, 6, 1), date(2025, 10, 1), 300),  # then 40 days off
        clozapine("m1", date(2025, 11, 10), date(2026, 1, 10), 200),  # then 5 days off
        clozapine("m2", date(2026, 1, 15), None, 200),
        lab("early", "anc", date(2025, 7, 1), 4200),
        *weekly_ancs([3000] * 16, start=date(2025, 11, 9)),
    )
    chart = chart_of(rec)
    assert [(g.start, g.end, g.days, g.new_course) for g in chart.gaps] == [
        (date(2025, 10, 1), date(2025, 11, 10), 40, True),
        (date(2026, 1, 10), date(2026, 1, 15), 5, False),
    ]
    root = parse(chart.svg or "")
    shaded = find_all(root, "rect", "gap")
    assert [s.get("data-days") for s in shaded] == ["40", "5"]
    assert all((s.get("fill") or "").startswith("url(#") for s in shaded)
    labels = [t.text for t in find_all(root, "text", "gap-label")]
    assert labels == ["off 40 d (new course)", "off 5 d (interrupted)"]
    # the count from the earlier course is drawn dimmed, as a square
    earlier = next(g for g in find_all(root, "g") if "earlier" in (g.get("class") or ""))
    assert len(list(earlier.iter(f"{NS}rect"))) == 1
    assert [p.current for p in chart.points][:2] == [False, True]


def test_drafted_restart_after_a_break_is_a_gap() -> None:
    draft = replace(clozapine("draft", AS_OF, None, 12.5), proposed=True, status="draft")
    rec = record(
        clozapine("old", date(2025, 6, 1), date(2026, 1, 1), 300),
        draft,
        *weekly_ancs([3000] * 4, start=date(2026, 2, 8)),
    )
    history = clozapine_history(rec, ctx())
    assert [(g.start, g.end, g.new_course) for g in gaps_of(history)] == [
        (date(2026, 1, 1), AS_OF, True)
    ]
    assert dose_steps(history, AS_OF)[-1].proposed is True


def test_next_due_marker_and_today() -> None:
    rec = simple_record()
    chart = chart_of(rec)
    evaluation = evaluated(rec)
    assert chart.next_due == evaluation.anc.next_due == date(2026, 3, 2)
    root = parse(chart.svg or "")
    (due,) = find_all(root, "line", "next-due")
    assert due.get("data-date") == "2026-03-02"
    texts = [t.text for t in find_all(root, "text", "next-due-label")]
    assert texts == ["next due 2026-03-02"]


def test_overdue_next_due_is_labelled_overdue() -> None:
    rec = record(
        clozapine("m1", date(2024, 1, 1), None, 300),
        *weekly_ancs([3000] * 3, start=date(2025, 12, 1)),
    )
    chart = chart_of(rec)
    assert chart.overdue
    assert [t.text for t in find_all(parse(chart.svg or ""), "text", "next-due-label")] == [
        f"next due {chart.next_due} (overdue)"
    ]


def test_no_anc_gives_a_message_not_an_empty_chart() -> None:
    chart = chart_of(record(clozapine("m1", START, None, 300)))
    assert chart.svg is None
    assert (
        chart.empty_message
        == "No ANC results on record up to 2026-03-01: there is nothing to chart."
    )
    assert "No results on record." in chart.description


def test_derived_anc_is_charted_with_how_it_was_derived() -> None:
    day = date(2026, 2, 20)
    rec = record(
        clozapine("m1", START, None, 300),
        lab("w", "wbc", day, 5000),
        lab("n", "neutrophil-pct", day, 50, "%"),
    )
    chart = chart_of(rec)
    assert [(p.value, p.derived) for p in chart.points] == [
        (2500, "WBC 5,000/µL x 50% neutrophils")
    ]


def test_text_from_the_data_is_escaped_in_the_svg() -> None:
    rec = record(
        clozapine("m1", START, None, 300),
        lab('x"><script>alert(1)</script>', "anc", date(2026, 2, 20), 3000),
    )
    svg = chart_of(rec).svg or ""
    assert "<script" not in svg
    assert "&lt;script&gt;" in svg
    parse(svg)


def test_levels_chart_band_alert_and_ratio_per_sample() -> None:
    day, later = date(2026, 1, 10), date(2026, 2, 10)
    rec = record(
        clozapine("m1", START, None, 300),
        lab("c1", "clozapine", day, 420, "ng/mL"),
        lab("n1", "norclozapine", day, 300, "ng/mL"),
        lab("c2", "clozapine", later, 840, "ng/mL"),
        lab("n2", "norclozapine", later, 240, "ng/mL"),
        lab("n3", "norclozapine", date(2026, 2, 20), 200, "ng/mL"),
    )
    chart = levels_chart(rec, ctx())
    rows = [(r.day, r.clozapine, r.norclozapine, r.ratio, r.ratio_reading) for r in chart.rows]
    assert rows == [
        (day, 420, 300, pytest.approx(1.4), "typical"),
        (later, 840, 240, pytest.approx(3.5), "high (> 3)"),
        (date(2026, 2, 20), None, 200, None, "no pair on the same specimen"),
    ]
    assert [r.reading for r in chart.rows[:2]] == [
        "within the target range",
        "above the target range (350–600)",
    ]
    root = parse(chart.svg or "")
    (band,) = find_all(root, "rect", "band-target")
    assert band.get("data-low") == "350"
    (alert,) = find_all(root, "line", "alert")
    assert alert.get("data-value") == "1000"
    assert len(find_all(root, "circle", "clozapine")) == 2 + 1  # two samples + legend
    assert len(find_all(root, "polygon", "norclozapine")) == 3 + 1
    assert "C/N ratio 3.50" in (root.find(f"{NS}desc").text or "")  # type: ignore[union-attr]


def test_levels_chart_boundaries_follow_the_rule_data() -> None:
    rec = record(
        clozapine("m1", START, None, 300),
        lab("a", "clozapine", date(2026, 1, 1), 350, "ng/mL"),
        lab("b", "clozapine", date(2026, 1, 8), 600, "ng/mL"),
        lab("c", "clozapine", date(2026, 1, 15), 1000, "ng/mL"),
        lab("d", "clozapine", date(2026, 1, 22), 349.9, "ng/mL"),
    )
    readings = [r.reading for r in levels_chart(rec, ctx()).rows]
    assert readings == [
        "within the target range",
        "within the target range",
        "at or above the alert level (1,000)",
        "below 350",
    ]


def test_no_levels_gives_a_message() -> None:
    chart = levels_chart(record(clozapine("m1", START, None, 300)), ctx())
    assert chart.svg is None
    assert chart.empty_message == "No clozapine or norclozapine levels on record up to 2026-03-01."


@pytest.mark.parametrize(
    ("top", "step"), [(4200, 1000), (2520, 500), (1000, 200), (6.3, 1), (1155, 200)]
)
def test_value_step_is_round(top: float, step: float) -> None:
    assert value_step(top) == step


def test_date_ticks_by_span() -> None:
    assert date_ticks(date(2026, 1, 1), date(2026, 1, 8))[0] == (date(2026, 1, 1), "2026-01-01")
    months = date_ticks(date(2025, 1, 15), date(2025, 12, 1))
    assert months[0] == (date(2025, 2, 1), "Feb 2025") and len(months) <= 8
    years = date_ticks(date(2016, 3, 1), date(2026, 3, 1))
    assert years[0][1] == "2017" and len(years) <= 8
