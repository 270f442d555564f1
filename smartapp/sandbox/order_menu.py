"""The draft medication orders the sandbox's prescribe page offers (issue 5 item 1:
"clozapine at a chosen dose, ciprofloxacin, risperidone, ..."), written as the draft
``MedicationRequest`` an EHR puts in ``context.draftOrders`` of order-select / order-sign.

The menu is demo input, not clinical rule data: each entry is the order a prescriber might
write, chosen so that every path of the order checks can be tried (start dose, titration,
maximum dose, CYP1A2 inhibition and induction, a third antipsychotic). Drugs are coded with
the RxNorm ingredient codes the synthetic patients use (``synthetic.terms``, rulebook §12);
doses are written as mg per administration and a daily frequency, as the synthetic patients'
non-clozapine orders are.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, timedelta

from smartapp.synthetic import builders as b
from smartapp.synthetic.builders import Json
from smartapp.synthetic.clinic import ingredient

DRAFT = "draft"


@dataclass(frozen=True)
class MenuOrder:
    """One order: ``mg`` per administration, ``per_day`` administrations a day, for ``days``
    days from the evaluation date (None: no end date)."""

    key: str
    product: str
    ingredient: str
    mg: float
    per_day: int
    days: int | None = None

    @property
    def daily_mg(self) -> float:
        return self.mg * self.per_day

    @property
    def sig(self) -> str:
        times = {1: "once a day", 2: "twice a day", 3: "three times a day"}[self.per_day]
        course = f" for {self.days} days" if self.days else ""
        return f"{self.mg:g} mg by mouth {times}{course}"

    @property
    def label(self) -> str:
        return f"{self.product}: {self.sig} ({self.daily_mg:g} mg/day)"


def _clozapine(mg: float, per_day: int) -> MenuOrder:
    return MenuOrder(f"clozapine-{mg * per_day:g}", "Clozapine", "clozapine", mg, per_day)


MENU: tuple[MenuOrder, ...] = (
    _clozapine(12.5, 1),
    _clozapine(12.5, 2),
    _clozapine(50, 2),
    _clozapine(150, 2),
    _clozapine(475, 2),
    MenuOrder("ciprofloxacin", "Ciprofloxacin 500 mg oral tablet", "ciprofloxacin", 500, 2, 7),
    MenuOrder("fluvoxamine", "Fluvoxamine maleate 50 mg oral tablet", "fluvoxamine", 50, 2),
    MenuOrder("carbamazepine", "Carbamazepine 200 mg oral tablet", "carbamazepine", 200, 2),
    MenuOrder(
        "divalproex", "Divalproex sodium 500 mg delayed-release tablet", "divalproex", 500, 2
    ),
    MenuOrder("risperidone", "Risperidone 2 mg oral tablet", "risperidone", 2, 2),
    MenuOrder("olanzapine", "Olanzapine 20 mg oral tablet", "olanzapine", 20, 1),
)
BY_KEY = {order.key: order for order in MENU}


def menu_order(key: str) -> MenuOrder:
    """The menu entry ``key``; KeyError for anything else (the form is untrusted)."""
    return BY_KEY[key]


def new_order_id() -> str:
    """A fresh FHIR id for a draft (a UUID: also its ``urn:uuid`` fullUrl)."""
    return str(uuid.uuid4())


def draft_request(order: MenuOrder, patient_id: str, day: date, order_id: str) -> Json:
    """The draft MedicationRequest for ``order``, starting on ``day`` (the evaluation date)."""
    # boundsPeriod.end is the last day taken: a 7-day course from the 1st ends on the 7th.
    end = (day + timedelta(days=order.days - 1)).isoformat() if order.days else None
    timing = b.timing(day.isoformat(), end, frequency=order.per_day, period=1)
    dosage = b.dosage(order.sig, b.quantity(order.mg, "mg"), timing)
    return b.medication_request(
        order_id,
        f"Patient/{patient_id}",
        ingredient(order.product, order.ingredient),
        [dosage],
        status=DRAFT,
        authored=f"{day.isoformat()}T09:00:00Z",
    )


def draft_orders_bundle(drafts: list[Json]) -> Json:
    """``context.draftOrders``: a collection Bundle, each draft at its ``urn:uuid``."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"fullUrl": f"urn:uuid:{d['id']}", "resource": d} for d in drafts],
    }
