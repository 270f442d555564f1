// The in-memory repository behind the test server: Medplum's MemoryRepository, plus what a real
// FHIR server does and MemoryRepository leaves to Medplum's database server (validation, paging
// links, _include/_revinclude, bare-id references, rejecting unknown search parameters).
//
// Searching is made fast without changing what it finds (see README "Search speed"): search
// parameter expressions are narrowed to the resource type they are evaluated on, a patient index
// narrows `patient=`/`subject=` searches to that patient's resources, and only the returned page
// is copied. `indexed: false` keeps MemoryRepository's own scan, for comparison.
import {
  DEFAULT_MAX_SEARCH_COUNT,
  DEFAULT_SEARCH_COUNT,
  OperationOutcomeError,
  badRequest,
  deepClone,
  evalFhirPath,
  formatSearchQuery,
  getReferenceString,
  globalSchema,
  isResourceType,
  matchesSearchRequest,
  validateResource,
} from '@medplum/core';
import { MemoryRepository } from '@medplum/fhir-router';

import { PatientIndex } from './patient_index.mjs';

const MAX_INCLUDE_ROUNDS = 4;
// Filters remembered per resource version; conditional writes search by one-off identifiers.
const MEMO_PER_RESOURCE = 32;

export function searchParamsOf(resourceType) {
  return globalSchema.types[resourceType]?.searchParams;
}

export class TestRepository extends MemoryRepository {
  /**
   * @param {{ base: string, pageSize?: number, validate?: boolean, indexed?: boolean }} options
   *   base: public base URL used in fullUrl and paging links; indexed: false searches by
   *   MemoryRepository's scan of every resource of the type (slow; for comparison tests).
   */
  constructor({ base, pageSize = DEFAULT_SEARCH_COUNT, validate = true, indexed = true }) {
    super();
    this.base = base;
    this.pageSize = pageSize;
    this.validate = validate;
    this.index = indexed ? new PatientIndex() : undefined;
    /** stored resource -> filter key -> whether it matches (stored resources are never mutated) */
    this.matched = new WeakMap();
  }

  // updateResource and patchResource both end in createResource, so this validates (and
  // indexes) every write, transactions' and conditional ones included.
  async createResource(resource, options) {
    if (this.validate) {
      validateResource(resource);
    }
    const created = await super.createResource(resource, options);
    this.index?.add(this.resources.get(created.resourceType).get(created.id));
    return created;
  }

  async deleteResource(resourceType, id) {
    await super.deleteResource(resourceType, id);
    this.index?.remove(resourceType, id);
  }

  clear() {
    super.clear();
    this.index?.clear();
  }

  // MemoryRepository.withTransaction does not roll back; the server snapshots around transactions.
  // Stored resources are never mutated (every write stores a new object; reads hand out copies),
  // so copying the maps and history lists is enough.
  snapshot() {
    return {
      resources: copyStore(this.resources, (resource) => resource),
      history: copyStore(this.history, (versions) => versions.slice()),
    };
  }

  restore(snapshot) {
    this.resources = snapshot.resources;
    this.history = snapshot.history;
    this.index?.rebuild(this.resources);
  }

  async search(request) {
    const params = searchParamsOf(request.resourceType);
    if (!params) {
      throw new OperationOutcomeError(badRequest(`Unsupported search type: ${request.resourceType}`));
    }
    const filters = (request.filters ?? []).map((f) => normalizeFilter(f, params, this.base));
    const count = Math.min(request.count ?? this.pageSize, DEFAULT_MAX_SEARCH_COUNT);
    const offset = request.offset ?? 0;
    const page = { ...request, filters, count, offset };
    // MemoryRepository applies sort rules one after another with a stable sort, so the last rule
    // applied wins: hand them over in reverse to honour the _sort priority order.
    const found = await this.find({ ...page, sortRules: request.sortRules?.slice().reverse() });
    const matches = (found.entry ?? []).map((e) => e.resource);
    const included = await this.included(request, matches);
    const entry = [
      ...matches.map((r) => this.entry(r, 'match')),
      ...included.map((r) => this.entry(r, 'include')),
    ];
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      total: found.total,
      link: this.links(page, found.total),
      entry: entry.length ? entry : undefined,
    };
  }

  /**
   * MemoryRepository.search: Medplum's matchesSearchRequest over the resources of the type, in
   * store order, then each sort rule in turn (stable), then offset and count. Indexed, the
   * patient index answers its `patient`/`subject` filter and rules out the other patients'
   * resources; the other filters are matched one at a time, remembered per stored resource
   * version; each sort key is computed once rather than per comparison; only the page is copied.
   */
  async find(request) {
    if (!this.index) {
      return super.search(request);
    }
    const { resourceType } = request;
    const filters = request.filters ?? [];
    const looked = this.index.lookup(resourceType, filters);
    const rest = filters.filter((f) => f !== looked?.filter).map((f) => [f, filterKey(f)]);
    const matches = [];
    for (const resource of this.resources.get(resourceType)?.values() ?? []) {
      if (looked && !looked.ids.has(resource.id)) {
        continue;
      }
      if (rest.every(([filter, key]) => this.matches(resource, filter, key))) {
        matches.push(resource);
      }
    }
    for (const rule of request.sortRules ?? []) {
      sortBy(matches, resourceType, rule);
    }
    let page = request.offset === undefined ? matches : matches.slice(request.offset);
    page = request.count === undefined ? page : page.slice(0, request.count);
    return {
      resourceType: 'Bundle',
      type: 'searchset',
      entry: page.length ? page.map((resource) => ({ resource: deepClone(resource) })) : undefined,
      total: matches.length,
    };
  }

  /** matchesSearchRequest for one filter; a write stores a new object, so the memo cannot go stale. */
  matches(resource, filter, key) {
    let memo = this.matched.get(resource);
    if (!memo) {
      memo = new Map();
      this.matched.set(resource, memo);
    }
    let match = memo.get(key);
    if (match === undefined) {
      match = matchesSearchRequest(resource, { resourceType: resource.resourceType, filters: [filter] });
      if (memo.size >= MEMO_PER_RESOURCE) {
        memo.clear();
      }
      memo.set(key, match);
    }
    return match;
  }

  entry(resource, mode) {
    return { fullUrl: `${this.base}/${resource.resourceType}/${resource.id}`, resource, search: { mode } };
  }

  links(page, total) {
    const url = (offset) => `${this.base}/${page.resourceType}${formatSearchQuery({ ...page, offset })}`;
    const link = [
      { relation: 'self', url: url(page.offset) },
      { relation: 'first', url: url(0) },
    ];
    if (page.count > 0 && page.offset + page.count < total) {
      link.push({ relation: 'next', url: url(page.offset + page.count) });
    }
    if (page.offset > 0) {
      link.push({ relation: 'previous', url: url(Math.max(0, page.offset - page.count)) });
    }
    return link;
  }

  /** _include (with :iterate over what was included) and _revinclude, deduplicated. */
  async included(request, matches) {
    const seen = new Set(matches.map((r) => getReferenceString(r)));
    const out = [];
    const add = (resource) => {
      const key = getReferenceString(resource);
      if (seen.has(key)) {
        return false;
      }
      seen.add(key);
      out.push(resource);
      return true;
    };
    let sources = matches;
    for (let round = 0; round < MAX_INCLUDE_ROUNDS && sources.length; round++) {
      const targets = (request.include ?? []).filter((t) => round === 0 || t.modifier === 'iterate');
      const added = [];
      for (const target of targets) {
        for (const resource of await this.forwardIncludes(target, sources)) {
          if (add(resource)) {
            added.push(resource);
          }
        }
      }
      sources = added;
    }
    for (const target of request.revInclude ?? []) {
      for (const resource of await this.reverseIncludes(target, matches)) {
        add(resource);
      }
    }
    return out;
  }

  async forwardIncludes(target, sources) {
    const param = referenceParam(target);
    const found = [];
    for (const source of sources.filter((r) => r.resourceType === target.resourceType)) {
      for (const reference of referencesIn(evalFhirPath(param.expression, source), this.base)) {
        if (target.targetType && !reference.startsWith(`${target.targetType}/`)) {
          continue;
        }
        try {
          found.push(await this.readReference({ reference }));
        } catch (err) {
          if (!(err instanceof OperationOutcomeError)) {
            throw err;
          }
        }
      }
    }
    return found;
  }

  async reverseIncludes(target, matches) {
    referenceParam(target);
    const found = [];
    for (const match of matches) {
      const bundle = await this.find({
        resourceType: target.resourceType,
        filters: [{ code: target.searchParam, operator: 'eq', value: getReferenceString(match) }],
      });
      found.push(...(bundle.entry ?? []).map((e) => e.resource));
    }
    return found;
  }
}

/** A copy of a type -> id -> value store, `copyValue` applied to each value. */
function copyStore(store, copyValue) {
  const copy = new Map();
  for (const [type, byId] of store) {
    copy.set(type, new Map([...byId].map(([id, value]) => [id, copyValue(value)])));
  }
  return copy;
}

function filterKey(filter) {
  return JSON.stringify([filter.code, filter.operator, filter.value]);
}

/** MemoryRepository's sort comparator (JSON text of the parameter's values), keys computed once. */
function sortBy(resources, resourceType, rule) {
  const expression = searchParamsOf(resourceType)?.[rule.code]?.expression;
  if (!expression) {
    return;
  }
  const keys = new Map(resources.map((r) => [r, JSON.stringify(evalFhirPath(expression, r))]));
  const sign = rule.descending ? -1 : 1;
  resources.sort((a, b) => keys.get(a).localeCompare(keys.get(b)) * sign);
}

/**
 * Make every search parameter's expression one for its resource type only. R4's shared
 * parameters (`patient`, `code`, `date`...) are unions over up to 32 resource types, e.g.
 * `AllergyIntolerance.patient | CarePlan.subject.where(resolve() is Patient) | ...`, and Medplum
 * parses and evaluates the whole union for each resource it matches: about 1 ms a resource.
 * Members rooted at another resource type yield nothing on this one, so dropping them changes no
 * result; a union narrowed to one member keeps `| {}` so its duplicates are still removed
 * (sort keys see them). Members rooted at anything else (`Resource.id`, `name`) are kept.
 * Call once, after the search parameters are indexed.
 */
export function narrowSearchExpressions() {
  for (const [resourceType, schema] of Object.entries(globalSchema.types)) {
    for (const [code, param] of Object.entries(schema.searchParams ?? {})) {
      const expression = param.expression && narrowExpression(param.expression, resourceType);
      if (expression && expression !== param.expression) {
        schema.searchParams[code] = { ...param, expression };
      }
    }
  }
}

function narrowExpression(expression, resourceType) {
  const members = unionMembers(expression);
  const kept = members.filter((member) => {
    const root = /^[(\s]*([A-Za-z]\w*)/.exec(member)?.[1];
    return !root || root === resourceType || !isResourceType(root);
  });
  if (members.length === 1 || kept.length === members.length || kept.length === 0) {
    return expression;
  }
  return kept.length === 1 ? `${kept[0]} | {}` : kept.join(' | ');
}

/** The top-level `|` operands of a FHIRPath expression (not those inside brackets or strings). */
function unionMembers(expression) {
  const members = [];
  let depth = 0;
  let quote;
  let start = 0;
  for (let i = 0; i < expression.length; i++) {
    const ch = expression[i];
    if (quote) {
      if (ch === '\\') {
        i++;
      } else if (ch === quote) {
        quote = undefined;
      }
    } else if (ch === "'" || ch === '`' || ch === '"') {
      quote = ch;
    } else if ('([{'.includes(ch)) {
      depth++;
    } else if (')]}'.includes(ch)) {
      depth--;
    } else if (ch === '|' && depth === 0) {
      members.push(expression.slice(start, i).trim());
      start = i + 1;
    }
  }
  members.push(expression.slice(start).trim());
  return members;
}

function referenceParam(target) {
  const param = searchParamsOf(target.resourceType)?.[target.searchParam];
  if (param?.type !== 'reference') {
    throw new OperationOutcomeError(badRequest(`Invalid include: ${target.resourceType}:${target.searchParam}`));
  }
  return param;
}

function referencesIn(values, base) {
  return values
    .map((v) => v?.reference)
    .filter((ref) => typeof ref === 'string' && !ref.startsWith('#'))
    .map((ref) => (ref.startsWith(`${base}/`) ? ref.slice(base.length + 1) : ref))
    .filter((ref) => /^[A-Za-z]+\/[^/]+$/.test(ref));
}

/**
 * Unknown (or chained) parameters are a 400, as on Medplum's server, rather than being silently
 * ignored. A bare id on a reference parameter (patient=123) means Type/123 for each target type.
 */
function normalizeFilter(filter, params, base) {
  const param = params[filter.code];
  if (!param) {
    throw new OperationOutcomeError(badRequest(`Unknown search parameter: ${filter.code}`, filter.code));
  }
  if (param.type !== 'reference' || filter.operator !== 'eq') {
    return filter;
  }
  const values = filter.value.split(',').flatMap((raw) => {
    const value = raw.startsWith(`${base}/`) ? raw.slice(base.length + 1) : raw;
    if (value.includes('/') || value.includes(':')) {
      return [value];
    }
    return (param.target ?? []).map((type) => `${type}/${value}`);
  });
  return { ...filter, value: values.join(',') };
}
