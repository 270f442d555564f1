// Which stored resources point at which patient: for each resource type, the reference strings
// its `patient` and `subject` search parameters yield, evaluated exactly as Medplum's
// matchesSearchRequest evaluates them. A search with `patient=` or `subject=` then only needs to
// run Medplum's matching over the resources this index names, not over every resource of the type.
import {
  convertToSearchableReferences,
  evalFhirPathTyped,
  globalSchema,
  Operator,
  splitSearchOnComma,
  toTypedValue,
} from '@medplum/core';

const COMPARTMENT_PARAMS = ['patient', 'subject'];

export class PatientIndex {
  constructor() {
    /** resourceType -> param code -> reference string -> Set of ids */
    this.ids = new Map();
    /** `Type/id` -> [code, reference][] it was filed under, to unfile it on update and delete */
    this.filed = new Map();
  }

  clear() {
    this.ids.clear();
    this.filed.clear();
  }

  /** Index every resource of `resources` (MemoryRepository's type -> id -> resource maps). */
  rebuild(resources) {
    this.clear();
    for (const byId of resources.values()) {
      for (const resource of byId.values()) {
        this.add(resource);
      }
    }
  }

  /** File the current version of `resource` (replacing what an earlier version filed). */
  add(resource) {
    const { resourceType, id } = resource;
    this.remove(resourceType, id);
    const filed = [];
    for (const code of COMPARTMENT_PARAMS) {
      const param = globalSchema.types[resourceType]?.searchParams?.[code];
      if (param?.type !== 'reference' || !param.expression) {
        continue;
      }
      const values = evalFhirPathTyped(param.expression, [toTypedValue(resource)]);
      for (const reference of convertToSearchableReferences(values)) {
        this.bucket(resourceType, code, reference, true).add(id);
        filed.push([code, reference]);
      }
    }
    this.filed.set(`${resourceType}/${id}`, filed);
  }

  remove(resourceType, id) {
    const key = `${resourceType}/${id}`;
    for (const [code, reference] of this.filed.get(key) ?? []) {
      const bucket = this.bucket(resourceType, code, reference, false);
      bucket?.delete(id);
      if (bucket?.size === 0) {
        this.ids.get(resourceType).get(code).delete(reference);
      }
    }
    this.filed.delete(key);
  }

  /**
   * The narrowest `patient`/`subject` equality filter of `filters` and the ids of the
   * `resourceType` resources that satisfy it, or undefined when no filter can be looked up.
   * The ids are exactly the resources Medplum would find matching that filter: it matches by
   * membership of a filter value among the very reference strings filed above.
   */
  lookup(resourceType, filters) {
    let narrowest;
    for (const filter of filters) {
      if (!COMPARTMENT_PARAMS.includes(filter.code) || filter.operator !== Operator.EQUALS) {
        continue;
      }
      // Medplum matches `patient=` (empty) against resources with no reference at all.
      if (filter.value === '' || !globalSchema.types[resourceType]?.searchParams?.[filter.code]) {
        continue;
      }
      const ids = new Set();
      for (const reference of splitSearchOnComma(filter.value)) {
        for (const id of this.bucket(resourceType, filter.code, reference, false) ?? []) {
          ids.add(id);
        }
      }
      if (!narrowest || ids.size < narrowest.ids.size) {
        narrowest = { filter, ids };
      }
    }
    return narrowest;
  }

  bucket(resourceType, code, reference, create) {
    let byCode = this.ids.get(resourceType);
    if (!byCode && create) {
      byCode = new Map();
      this.ids.set(resourceType, byCode);
    }
    let byReference = byCode?.get(code);
    if (!byReference && create) {
      byReference = new Map();
      byCode.set(code, byReference);
    }
    let ids = byReference?.get(reference);
    if (!ids && create) {
      ids = new Set();
      byReference.set(reference, ids);
    }
    return ids;
  }
}
