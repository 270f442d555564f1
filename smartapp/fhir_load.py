"""Load a FHIR Bundle into a FHIR server, idempotently: every resource is PUT at ``Type/id`` in
transaction Bundles of at most ``batch_size`` entries (Medplum takes at most 50 updates per
transaction), so loading the same data twice leaves the server holding the same resources.
Serves the integration tests and the sandbox (``smartapp sandbox load``).

Entries that name a resource by ``urn:uuid`` (or any fullUrl) get that resource's id (a
``urn:uuid`` entry without an id takes the uuid), and references to the fullUrl are rewritten
to ``Type/id``: a reference from one transaction to a resource in another must still resolve.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from smartapp.fhir_client import RESOURCE_ID, RESOURCE_TYPE, FhirClient

Json = dict[str, Any]
UUID_PREFIX = "urn:uuid:"


def load_bundle(client: FhirClient, bundle: Mapping[str, Any], batch_size: int = 40) -> int:
    """PUT every entry's resource of ``bundle`` (any Bundle type) by Type/id; returns how many
    resources were written. Raises ValueError for a bundle we cannot load as given (nothing is
    sent then) and FhirError when the server refuses a transaction (earlier ones stay)."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    resources = _resources(bundle)
    for start in range(0, len(resources), batch_size):
        client.transaction(_transaction(resources[start : start + batch_size]))
    return len(resources)


def _resources(bundle: Mapping[str, Any]) -> list[Json]:
    if bundle.get("resourceType") != "Bundle":
        raise ValueError("not a FHIR Bundle")
    entries = bundle.get("entry", [])
    if not isinstance(entries, list):
        raise ValueError("Bundle.entry is not a list")
    resources: list[Json] = []
    local: dict[str, str] = {}
    for index, entry in enumerate(entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        if resource is None:
            continue
        full_url = entry.get("fullUrl")
        resource = _with_id(resource, full_url, index)
        if isinstance(full_url, str) and full_url:
            local[full_url] = f"{resource['resourceType']}/{resource['id']}"
        resources.append(resource)
    return [_rewrite(resource, local) for resource in resources]


def _with_id(resource: Any, full_url: Any, index: int) -> Json:
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise ValueError(f"entry {index}: not a FHIR resource")
    if not RESOURCE_TYPE.fullmatch(resource["resourceType"]):
        raise ValueError(f"entry {index}: not a FHIR resource type")
    rid = resource.get("id")
    if rid is None and isinstance(full_url, str) and full_url.startswith(UUID_PREFIX):
        rid = full_url.removeprefix(UUID_PREFIX)
        resource = {**resource, "id": rid}
    if not isinstance(rid, str) or not RESOURCE_ID.fullmatch(rid):
        raise ValueError(f"entry {index}: {resource['resourceType']} has no usable id")
    return dict(resource)


def _rewrite(value: Any, local: Mapping[str, str]) -> Any:
    """A deep copy of ``value`` whose ``reference`` strings naming an entry's fullUrl become
    ``Type/id``."""
    if isinstance(value, dict):
        out = {key: _rewrite(item, local) for key, item in value.items()}
        reference = out.get("reference")
        if isinstance(reference, str) and reference in local:
            out["reference"] = local[reference]
        return out
    if isinstance(value, list):
        return [_rewrite(item, local) for item in value]
    return value


def _transaction(resources: list[Json]) -> Json:
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "resource": resource,
                "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
            }
            for resource in resources
        ],
    }
