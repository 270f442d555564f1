// The in-memory repository behind the test server: Medplum's MemoryRepository, plus what a real
// FHIR server does and MemoryRepository leaves to Medplum's database server (validation, paging
// links, _include/_revinclude, bare-id references, rejecting unknown search parameters).
import {
  DEFAULT_MAX_SEARCH_COUNT,
  DEFAULT_SEARCH_COUNT,
  OperationOutcomeError,
  badRequest,
  evalFhirPath,
  formatSearchQuery,
  getReferenceString,
  globalSchema,
  validateResource,
} from '@medplum/core';
import { MemoryRepository } from '@medplum/fhir-router';

const MAX_INCLUDE_ROUNDS = 4;

export function searchParamsOf(resourceType) {
  return globalSchema.types[resourceType]?.searchParams;
}

export class TestRepository extends MemoryRepository {
  /**
   * @param {{ base: string, pageSize?: number, validate?: boolean }} options
   *   base: public base URL used in fullUrl and paging links.
   */
  constructor({ base, pageSize = DEFAULT_SEARCH_COUNT, validate = true }) {
    super();
    this.base = base;
    this.pageSize = pageSize;
    this.validate = validate;
  }

  // updateResource and patchResource both end in createResource, so this validates every write.
  async createResource(resource, options) {
    if (this.validate) {
      validateResource(resource);
    }
    return super.createResource(resource, options);
  }

  // MemoryRepository.withTransaction does not roll back; the server snapshots around transactions.
  snapshot() {
    return structuredClone({ resources: this.resources, history: this.history });
  }

  restore(snapshot) {
    this.resources = snapshot.resources;
    this.history = snapshot.history;
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
    const found = await super.search({ ...page, sortRules: request.sortRules?.slice().reverse() });
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
      const bundle = await super.search({
        resourceType: target.resourceType,
        filters: [{ code: target.searchParam, operator: 'eq', value: getReferenceString(match) }],
      });
      found.push(...(bundle.entry ?? []).map((e) => e.resource));
    }
    return found;
  }
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
