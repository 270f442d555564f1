"""The monitoring calendar: what is due when (issue 4 item 4), read off the evaluation.

No rule is made here: every date is a ``next_due`` the rules set (the ANC summary, or a
finding's), and every row names the finding it comes from. Four groups, one or more rows each:

- ANC (UK: full blood count): the ANC summary's next due date and frequency (rulebook §2.2,
  §3); ``anc-missing`` / ``anc-baseline-missing`` when there is no usable count.
- Troponin + CRP: ``myocarditis-monitoring-due`` (rulebook §4); the watch and stop findings ask
  for daily tests without a date of their own.
- Clozapine level: the rulebook sets no routine level schedule, so none is invented here. A
  level is dated only after a smoking change (``smoking-*``, rulebook §6); other findings that
  suggest a level (an interacting drug, a level or ratio out of range, seizure risk) give an
  "advised" row without a date.
- Metabolic: ``metabolic-monitoring-due`` (rulebook §9).

A finding that suggests a test of a group but carries no date gives an "advised" row.
Status: ``overdue`` after the due date, ``due now`` on it, ``due soon`` within the rulebook's
due-soon window (``anc.due.due_soon_days``, §2.2 policy; troponin/CRP use
``myocarditis.schedule.due_soon_days``), else ``scheduled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from smartapp.rules.findings import Evaluation, Finding, LabAction
from smartapp.rules.ruleset import Ruleset

OVERDUE, DUE_NOW, DUE_SOON, SCHEDULED = "overdue", "due now", "due soon", "scheduled"
ADVISED, NOT_DUE = "advised (no date set)", "not due"


@dataclass(frozen=True)
class Group:
    key: str
    label: str
    actions: tuple[LabAction, ...]
    soon_path: str


ANC_SOON, HEART_SOON = "anc.due.due_soon_days", "myocarditis.schedule.due_soon_days"
GROUPS = (
    Group("anc", "ANC", ("anc", "cbc-diff"), ANC_SOON),
    Group("troponin-crp", "Troponin + CRP", ("troponin-crp",), HEART_SOON),
    Group("clozapine-level", "Clozapine level", ("clozapine-level",), ANC_SOON),
    Group("metabolic", "Metabolic (weight/BMI, glucose/HbA1c, lipids)", ("metabolic",), ANC_SOON),
)
ANC_DUE_FINDINGS = ("anc-overdue", "anc-due-soon", "anc-repeat-needed")
ANC_FAMILY = ("anc-", "fbc-")


@dataclass(frozen=True)
class CalendarRow:
    group: str
    what: str
    due: date | None
    status: str
    note: str
    finding: str | None = None  # the finding code this row comes from (page anchor)

    @property
    def status_class(self) -> str:
        return "status-" + self.status.split(" (")[0].replace(" ", "-")


def status(due: date, as_of: date, soon_days: int) -> str:
    if as_of > due:
        return OVERDUE
    if as_of == due:
        return DUE_NOW
    return DUE_SOON if (due - as_of).days <= soon_days else SCHEDULED


def _row(group: Group, what: str, f: Finding, as_of: date, rules: Ruleset) -> CalendarRow:
    if f.next_due is None:
        return CalendarRow(group.key, what, None, ADVISED, f.summary, f.code)
    state = status(f.next_due, as_of, rules.days(group.soon_path))
    return CalendarRow(group.key, what, f.next_due, state, f.summary, f.code)


def _anc_rows(evaluation: Evaluation, group: Group, rules: Ruleset) -> list[CalendarRow]:
    uk = evaluation.profile == "uk-mhra"
    what = "Full blood count (WBC + neutrophils)" if uk else "ANC"
    anc, as_of = evaluation.anc, evaluation.as_of
    codes = evaluation.codes()
    if anc.next_due is not None:
        linked = next((c for c in ANC_DUE_FINDINGS if c in codes), None)
        linked = linked or next((c for c in codes if c.startswith(ANC_FAMILY)), None)
        state = OVERDUE if anc.overdue else status(anc.next_due, as_of, rules.days(group.soon_path))
        latest = f"; latest {anc.latest.value:,.0f}/µL on {anc.latest.date}" if anc.latest else ""
        note = f"{anc.frequency or 'frequency unknown'}, {anc.threshold_set} table{latest}"
        return [CalendarRow(group.key, what, anc.next_due, state, note, linked)]
    dated = [
        f for f in evaluation.findings if f.code.startswith(ANC_FAMILY) and f.next_due is not None
    ]
    if dated:
        return [_row(group, what, f, as_of, rules) for f in dated]
    if evaluation.clozapine.status != "active":
        return [CalendarRow(group.key, what, None, NOT_DUE, "no current clozapine course")]
    return [CalendarRow(group.key, what, None, NOT_DUE, "no ANC schedule could be set")]


def _idle_note(group: Group, evaluation: Evaluation, rules: Ruleset) -> str:
    if group.key == "clozapine-level":
        return (
            "no routine level schedule in the rulebook; the rules ask for a level after a "
            "smoking change, with an interacting drug or a dose-related finding"
        )
    if evaluation.clozapine.status != "active":
        return "no current clozapine course"
    if group.key == "troponin-crp":
        days = rules.value("myocarditis.schedule.draw_days")
        listed = ", ".join(str(d) for d in days) if isinstance(days, list) else "?"
        return f"nothing due: troponin and CRP are drawn on days {listed} of a new course"
    return "nothing due now"


def monitoring_calendar(evaluation: Evaluation, rules: Ruleset) -> list[CalendarRow]:
    """The calendar rows of ``evaluation``: dated rows first within each group."""
    rows: list[CalendarRow] = []
    as_of = evaluation.as_of
    for group in GROUPS:
        found: list[CalendarRow] = _anc_rows(evaluation, group, rules) if group.key == "anc" else []
        for f in evaluation.findings:
            if not set(f.actions) & set(group.actions):
                continue
            if group.key == "anc" and f.code.startswith(ANC_FAMILY):
                continue  # the summary row above covers the ANC findings
            found.append(_row(group, group.label, f, as_of, rules))
        if not found:
            found = [
                CalendarRow(
                    group.key, group.label, None, NOT_DUE, _idle_note(group, evaluation, rules)
                )
            ]
        found.sort(key=lambda r: (r.due is None, r.due or date.max))
        rows.extend(found)
    return rows
