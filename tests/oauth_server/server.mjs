#!/usr/bin/env node
// Test-only SMART App Launch 2.2 authorization server for the end-to-end tests: the
// oauth2-mock-server library (keys, JWT signing, /authorize, /token, /jwks) behind a wrapper that
// adds what a SMART EHR does and the library does not:
//
//   node server.mjs --port N --fhir-base URL [--patient ID] [--scope-grant "..."]
//                   [--client-id ID] [--redirect-uri URL ...] [--client-secret S]
//                   [--client-jwks-url URL] [--fhir-user REF] [--expires-in S] [--v1-only]
//                   [--stdin-lifeline]
//
// - SMART discovery at /.well-known/smart-configuration and at {iss}/.well-known/... where the
//   iss is this server's /fhir: a facade that checks our bearer tokens and granted scopes and
//   proxies to --fhir-base (the real FHIR server, which knows nothing of SMART).
// - /authorize: no login page (auto-approve), but the request is checked: registered client and
//   redirect_uri, response_type=code, state, aud = our iss, PKCE S256 only. The code remembers
//   the challenge, client, redirect_uri, granted scope and launch context.
// - /token: PKCE enforced (a missing or wrong code_verifier is 400 invalid_grant; the library
//   alone skips PKCE when no verifier is sent), codes and refresh tokens single use, client
//   authentication (public, client_secret_basic or private_key_jwt), and the SMART context added
//   to the response: patient, encounter, need_patient_banner, smart_style_url, fhirUser,
//   intent, fhirContext, appContext, scope, expires_in, refresh_token.
// - Launch ids: `launch` is base64url JSON, e.g. {"patient": "p1"}, so one server serves many
//   patients; optional keys encounter, need_patient_banner, intent, fhirContext, appContext
//   (as a CDS Hooks card's smart link passes it), scope_grant, deny (the user refuses).
// - GET /admin/requests: the authorize, token and FHIR requests received (secrets redacted).
import http from 'node:http';
import { createHash, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';

import { createRemoteJWKSet, jwtVerify } from 'jose';
import { OAuth2Issuer, OAuth2Service } from 'oauth2-mock-server';

const HOST = '127.0.0.1';
const FHIR_PREFIX = '/fhir';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';
const ASSERTION_ALGS = ['RS384', 'ES384'];
const SCOPE_RE = /^(patient|user|system)\/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|[cruds]+)(\?.*)?$/;
// The example style from the SMART App Launch specification (scopes-and-launch-context).
const SMART_STYLE = {
  color_background: '#edeae3',
  color_error: '#9e2d2d',
  color_highlight: '#69b5ce',
  color_modal_backdrop: '',
  color_success: '#498e49',
  color_text: '#303030',
  dim_border_radius: '6px',
  dim_font_size: '13px',
  dim_spacing_size: '20px',
  font_family_body: "Georgia, Times, 'Times New Roman', serif",
  font_family_heading: "'HelveticaNeue-Light', Helvetica, Arial, 'Lucida Grande', sans-serif",
};

function options() {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '0' },
      'fhir-base': { type: 'string' },
      patient: { type: 'string' },
      'scope-grant': { type: 'string' },
      'client-id': { type: 'string' },
      'redirect-uri': { type: 'string', multiple: true, default: [] },
      'client-secret': { type: 'string' },
      'client-jwks-url': { type: 'string' },
      'fhir-user': { type: 'string', default: 'Practitioner/e2e-clinician' },
      'expires-in': { type: 'string', default: '3600' },
      'v1-only': { type: 'boolean', default: false },
      'stdin-lifeline': { type: 'boolean', default: false },
    },
  });
  if (!values['fhir-base']) {
    throw new Error('--fhir-base URL is required (the FHIR server behind the SMART facade)');
  }
  const int = (name) => {
    const n = Number(values[name]);
    if (!Number.isInteger(n) || n < 0) {
      throw new Error(`--${name} must be a non-negative integer, got ${values[name]}`);
    }
    return n;
  };
  return {
    port: int('port'),
    upstream: values['fhir-base'].replace(/\/+$/, ''),
    patient: values.patient,
    scopeGrant: values['scope-grant'],
    clientId: values['client-id'],
    redirectUris: values['redirect-uri'],
    clientSecret: values['client-secret'],
    clientJwksUrl: values['client-jwks-url'],
    fhirUser: values['fhir-user'],
    expiresIn: int('expires-in'),
    v1Only: values['v1-only'],
    stdinLifeline: values['stdin-lifeline'],
  };
}

class OAuthError extends Error {
  constructor(status, error, description) {
    super(description);
    this.status = status;
    this.error = error;
  }
}

const s256 = (verifier) => createHash('sha256').update(verifier).digest('base64url');
const scopesOf = (text) => (text ?? '').split(/\s+/).filter(Boolean);

function decodeLaunch(launch) {
  if (launch === undefined) {
    return {};
  }
  let context;
  try {
    context = JSON.parse(Buffer.from(launch, 'base64url').toString('utf8'));
  } catch {
    throw new OAuthError(400, 'invalid_request', 'launch is not base64url JSON');
  }
  if (context === null || typeof context !== 'object' || Array.isArray(context)) {
    throw new OAuthError(400, 'invalid_request', 'launch must encode a JSON object');
  }
  return context;
}

/** Whether granted scopes allow `interaction` ('r' read, 's' search) on `type` (v1 and v2). */
export function permits(scopes, type, interaction) {
  return scopes.some((scope) => {
    const m = SCOPE_RE.exec(scope);
    if (!m || (m[2] !== '*' && m[2] !== type)) {
      return false;
    }
    const perms = m[3];
    if (perms === '*' || perms === 'read') {
      return true;
    }
    return perms !== 'write' && perms.includes(interaction);
  });
}

class SmartServer {
  constructor(opts) {
    this.opts = opts;
    this.issuer = new OAuth2Issuer();
    this.service = new OAuth2Service(this.issuer);
    this.codes = new Map(); // code -> grant (single use)
    this.refreshTokens = new Map(); // refresh token -> grant (rotated on use)
    this.accessTokens = new Map(); // access token -> { scopes, expiresAt }
    this.assertionIds = new Set(); // private_key_jwt jti replay cache
    this.requests = [];
    this.clientJwks = opts.clientJwksUrl ? createRemoteJWKSet(new URL(opts.clientJwksUrl)) : null;
    this.service.on('beforeAuthorizeRedirect', (redirect, req) => this.rememberCode(redirect, req));
    this.service.on('beforeTokenSigning', (token, req) => this.addClaims(token, req));
    this.service.on('beforeResponse', (response, req) => this.addContext(response, req));
  }

  get origin() {
    return this.issuer.url;
  }

  get iss() {
    return `${this.origin}${FHIR_PREFIX}`;
  }

  smartConfiguration() {
    const capabilities = [
      'launch-ehr', 'launch-standalone', 'client-public', 'context-ehr-patient',
      'context-ehr-encounter', 'context-standalone-patient', 'context-banner', 'context-style',
      'permission-patient', 'permission-user', 'permission-offline', 'permission-online',
      'sso-openid-connect', 'authorize-post',
    ];
    capabilities.push(...(this.opts.v1Only ? ['permission-v1'] : ['permission-v1', 'permission-v2']));
    const authMethods = ['none'];
    if (this.opts.clientSecret) {
      capabilities.push('client-confidential-symmetric');
      authMethods.push('client_secret_basic');
    }
    if (this.clientJwks) {
      capabilities.push('client-confidential-asymmetric');
      authMethods.push('private_key_jwt');
    }
    return {
      issuer: this.origin,
      jwks_uri: `${this.origin}/jwks`,
      authorization_endpoint: `${this.origin}/authorize`,
      token_endpoint: `${this.origin}/token`,
      token_endpoint_auth_methods_supported: authMethods,
      token_endpoint_auth_signing_alg_values_supported: ASSERTION_ALGS,
      grant_types_supported: ['authorization_code', 'refresh_token'],
      response_types_supported: ['code'],
      scopes_supported: ['openid', 'fhirUser', 'launch', 'launch/patient', 'offline_access', 'online_access',
        ...(this.opts.v1Only ? ['patient/*.read', 'user/*.read'] : ['patient/*.rs', 'user/*.rs'])],
      introspection_endpoint: `${this.origin}/introspect`,
      revocation_endpoint: `${this.origin}/revoke`,
      userinfo_endpoint: `${this.origin}/userinfo`,
      code_challenge_methods_supported: ['S256'],
      capabilities,
    };
  }

  // ---- /authorize -------------------------------------------------------------------------

  /** Checks the request; throws (400, no redirect) while the redirect target is untrusted. */
  checkClientAndRedirect(query) {
    const { client_id: clientId, redirect_uri: redirectUri } = query;
    if (typeof clientId !== 'string' || !clientId) {
      throw new OAuthError(400, 'invalid_request', 'client_id is required');
    }
    if (this.opts.clientId && clientId !== this.opts.clientId) {
      throw new OAuthError(400, 'unauthorized_client', `unknown client_id ${clientId}`);
    }
    if (typeof redirectUri !== 'string' || !URL.canParse(redirectUri)) {
      throw new OAuthError(400, 'invalid_request', 'redirect_uri is required and must be a URL');
    }
    const registered = this.opts.redirectUris;
    const loopback = ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(redirectUri).hostname);
    if (registered.length ? !registered.includes(redirectUri) : !loopback) {
      throw new OAuthError(400, 'invalid_request', `redirect_uri ${redirectUri} is not registered`);
    }
  }

  /** The grant an approved request gets; errors here are sent back to the redirect_uri. */
  approve(query) {
    if (query.response_type !== 'code') {
      throw new OAuthError(400, 'unsupported_response_type', 'response_type must be code');
    }
    if (typeof query.state !== 'string' || !query.state) {
      throw new OAuthError(400, 'invalid_request', 'state is required');
    }
    if (query.aud !== this.iss) {
      throw new OAuthError(400, 'invalid_request', `aud must be ${this.iss}, got ${query.aud}`);
    }
    if (typeof query.code_challenge !== 'string' || query.code_challenge_method !== 'S256') {
      throw new OAuthError(400, 'invalid_request', 'PKCE with code_challenge_method S256 is required');
    }
    if (typeof query.scope !== 'string' || !query.scope.trim()) {
      throw new OAuthError(400, 'invalid_scope', 'scope is required');
    }
    const launch = decodeLaunch(query.launch);
    if (launch.deny) {
      throw new OAuthError(400, 'access_denied', 'The user denied the request');
    }
    const requested = scopesOf(query.scope);
    const patient = launch.patient ?? this.opts.patient;
    const needsPatient = requested.includes('launch') || requested.includes('launch/patient');
    if (needsPatient && !patient) {
      throw new OAuthError(400, 'invalid_request', 'no patient in launch context');
    }
    return {
      clientId: query.client_id,
      redirectUri: query.redirect_uri,
      challenge: query.code_challenge,
      scope: launch.scope_grant ?? this.opts.scopeGrant ?? requested.join(' '),
      context: {
        patient,
        encounter: launch.encounter,
        need_patient_banner: launch.need_patient_banner ?? true,
        intent: launch.intent,
        fhirContext: launch.fhirContext,
        appContext: launch.appContext,
      },
    };
  }

  authorize(req, res, url) {
    const query = Object.fromEntries(url.searchParams);
    this.record('authorize', query);
    try {
      this.checkClientAndRedirect(query);
    } catch (err) {
      return this.sendError(res, err);
    }
    try {
      req.smartGrant = this.approve(query);
    } catch (err) {
      if (!(err instanceof OAuthError)) {
        throw err;
      }
      const back = new URL(query.redirect_uri);
      back.searchParams.set('error', err.error);
      back.searchParams.set('error_description', err.message);
      if (query.state) {
        back.searchParams.set('state', query.state);
      }
      res.writeHead(302, { Location: back.href }).end();
      return undefined;
    }
    return this.service.requestHandler(req, res);
  }

  rememberCode(redirect, req) {
    const code = redirect.url.searchParams.get('code');
    if (code && req.smartGrant) {
      this.codes.set(code, req.smartGrant);
    }
  }

  // ---- /token -----------------------------------------------------------------------------

  async authenticateClient(req, body) {
    const basic = /^Basic (.+)$/i.exec(req.headers.authorization ?? '');
    if (basic) {
      const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
      const colon = decoded.indexOf(':');
      const [id, secret] = [decoded.slice(0, colon), decoded.slice(colon + 1)].map(formDecode);
      if (!this.opts.clientSecret || id !== this.opts.clientId || secret !== this.opts.clientSecret) {
        throw new OAuthError(401, 'invalid_client', 'client authentication failed');
      }
      return id;
    }
    if (body.client_assertion_type === JWT_BEARER && this.clientJwks) {
      return this.verifyAssertion(body.client_assertion);
    }
    if (this.opts.clientSecret || this.clientJwks) {
      throw new OAuthError(401, 'invalid_client', 'this client must authenticate');
    }
    if (!body.client_id || (this.opts.clientId && body.client_id !== this.opts.clientId)) {
      throw new OAuthError(401, 'invalid_client', 'unknown or missing client_id');
    }
    return body.client_id;
  }

  async verifyAssertion(assertion) {
    try {
      const { payload } = await jwtVerify(assertion ?? '', this.clientJwks, {
        algorithms: ASSERTION_ALGS,
        issuer: this.opts.clientId,
        subject: this.opts.clientId,
        audience: `${this.origin}/token`,
        maxTokenAge: '5m',
      });
      if (!payload.jti || this.assertionIds.has(payload.jti)) {
        throw new Error('jti missing or replayed');
      }
      this.assertionIds.add(payload.jti);
      return payload.sub;
    } catch (err) {
      throw new OAuthError(401, 'invalid_client', `client assertion refused: ${err.message}`);
    }
  }

  async checkGrant(req, body) {
    const clientId = await this.authenticateClient(req, body);
    if (body.grant_type === 'authorization_code') {
      const grant = this.codes.get(body.code);
      this.codes.delete(body.code);
      if (!grant || grant.clientId !== clientId) {
        throw new OAuthError(400, 'invalid_grant', 'unknown, used or foreign authorization code');
      }
      if (body.redirect_uri !== grant.redirectUri) {
        throw new OAuthError(400, 'invalid_grant', 'redirect_uri differs from the authorize request');
      }
      if (typeof body.code_verifier !== 'string' || s256(body.code_verifier) !== grant.challenge) {
        throw new OAuthError(400, 'invalid_grant', 'code_verifier does not match the code_challenge');
      }
      return grant;
    }
    if (body.grant_type === 'refresh_token') {
      const grant = this.refreshTokens.get(body.refresh_token);
      this.refreshTokens.delete(body.refresh_token);
      if (!grant || grant.clientId !== clientId) {
        throw new OAuthError(400, 'invalid_grant', 'unknown, used or foreign refresh token');
      }
      return grant;
    }
    throw new OAuthError(400, 'unsupported_grant_type', `grant_type ${body.grant_type} is not supported`);
  }

  async token(req, res) {
    const text = await readText(req);
    const body = Object.fromEntries(new URLSearchParams(text));
    this.record('token', body);
    try {
      req.smartGrant = await this.checkGrant(req, body);
    } catch (err) {
      return this.sendError(res, err);
    }
    // The stream is consumed; body-parser leaves a finished request's body as we set it.
    delete body.code_verifier; // checked above; the library's own check needs its own map
    req.body = body;
    return this.service.requestHandler(req, res);
  }

  addClaims(token, req) {
    const grant = req?.smartGrant;
    if (!grant) {
      return;
    }
    const payload = token.payload;
    payload.exp = payload.iat + this.opts.expiresIn;
    payload.fhirUser = this.opts.fhirUser;
    if ('scope' in payload) {
      payload.scope = grant.scope;
      payload.patient = grant.context.patient;
      payload.aud = this.iss;
    }
  }

  addContext(response, req) {
    const grant = req.smartGrant;
    if (!grant || response.statusCode !== 200) {
      return;
    }
    const body = response.body;
    const scopes = scopesOf(grant.scope);
    const context = Object.fromEntries(Object.entries(grant.context).filter(([, v]) => v !== undefined));
    Object.assign(body, context, {
      scope: grant.scope,
      expires_in: this.opts.expiresIn,
      smart_style_url: `${this.origin}/smart-style.json`,
      fhirUser: this.opts.fhirUser,
    });
    if (!scopes.includes('openid')) {
      delete body.id_token;
    }
    if (scopes.includes('offline_access') || scopes.includes('online_access')) {
      this.refreshTokens.set(body.refresh_token, grant);
    } else {
      delete body.refresh_token;
    }
    this.accessTokens.set(body.access_token, {
      scopes,
      expiresAt: Date.now() + this.opts.expiresIn * 1000,
    });
  }

  // ---- the FHIR facade --------------------------------------------------------------------

  async fhir(req, res, url) {
    const rest = url.pathname.slice(FHIR_PREFIX.length);
    this.record('fhir', { method: req.method, path: rest, query: url.search });
    if (rest === '/.well-known/smart-configuration') {
      return sendJson(res, 200, this.smartConfiguration());
    }
    if (rest !== '/metadata') {
      const refusal = this.refuse(req, rest);
      if (refusal) {
        return sendJson(res, refusal.status, operationOutcome(refusal.code, refusal.text), refusal.headers);
      }
    }
    const upstream = await fetch(`${this.opts.upstream}${rest}${url.search}`, {
      method: req.method,
      headers: pick(req.headers, ['accept', 'content-type', 'prefer', 'if-match', 'if-none-exist']),
      body: ['GET', 'HEAD'].includes(req.method) ? undefined : await readText(req),
    });
    let text = (await upstream.text()).replaceAll(this.opts.upstream, this.iss);
    if (rest === '/metadata' && upstream.ok) {
      text = JSON.stringify(this.withOAuthUris(JSON.parse(text)));
    }
    const headers = pick(Object.fromEntries(upstream.headers), ['content-type', 'etag', 'last-modified', 'location']);
    if (headers.location) {
      headers.location = headers.location.replaceAll(this.opts.upstream, this.iss);
    }
    res.writeHead(upstream.status, headers).end(text);
    return undefined;
  }

  /** Why a FHIR request is refused (401 no valid token, 403 scope not granted), or null. */
  refuse(req, rest) {
    const bearer = /^Bearer (.+)$/i.exec(req.headers.authorization ?? '');
    const token = bearer && this.accessTokens.get(bearer[1]);
    if (!token || token.expiresAt <= Date.now()) {
      return {
        status: 401, code: 'login', text: 'A valid bearer token is required',
        headers: { 'WWW-Authenticate': 'Bearer error="invalid_token"' },
      };
    }
    const [type, id, op] = rest.split('/').filter(Boolean);
    const search = req.method === 'GET' ? !id || id === '_history' : op === undefined && id === '_search';
    const interaction = search ? 's' : 'r';
    if (!type || (req.method !== 'GET' && id !== '_search') || !permits(token.scopes, type, interaction)) {
      return { status: 403, code: 'forbidden', text: `Scope does not permit ${req.method} ${rest}` };
    }
    return null;
  }

  withOAuthUris(capability) {
    const extension = [{
      url: 'http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris',
      extension: [
        { url: 'authorize', valueUri: `${this.origin}/authorize` },
        { url: 'token', valueUri: `${this.origin}/token` },
      ],
    }];
    for (const rest of capability.rest ?? []) {
      rest.security = { ...rest.security, extension };
    }
    return capability;
  }

  // ---- plumbing ---------------------------------------------------------------------------

  record(endpoint, params) {
    const redacted = { ...params };
    for (const key of ['client_secret', 'client_assertion']) {
      if (key in redacted) {
        redacted[key] = '<redacted>';
      }
    }
    this.requests.push({ endpoint, params: redacted });
  }

  sendError(res, err) {
    if (!(err instanceof OAuthError)) {
      throw err;
    }
    const headers = err.status === 401 ? { 'WWW-Authenticate': 'Basic realm="token"' } : {};
    return sendJson(res, err.status, { error: err.error, error_description: err.message }, headers);
  }

  async handle(req, res) {
    const url = new URL(req.url, this.origin);
    const path = url.pathname;
    if (req.method === 'GET' && path === '/.well-known/smart-configuration') {
      return sendJson(res, 200, this.smartConfiguration());
    }
    if (req.method === 'GET' && path === '/smart-style.json') {
      return sendJson(res, 200, SMART_STYLE);
    }
    if (req.method === 'GET' && path === '/admin/requests') {
      return sendJson(res, 200, this.requests);
    }
    if (path === FHIR_PREFIX || path.startsWith(`${FHIR_PREFIX}/`)) {
      return this.fhir(req, res, url);
    }
    if (req.method === 'GET' && path === '/authorize') {
      return this.authorize(req, res, url);
    }
    if (req.method === 'POST' && path === '/token') {
      return this.token(req, res);
    }
    return this.service.requestHandler(req, res);
  }
}

async function readText(req) {
  const chunks = [];
  for await (const chunk of req) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** RFC 6749 §2.3.1: Basic credentials are form-urlencoded before base64. */
function formDecode(text) {
  return decodeURIComponent(text.replaceAll('+', ' '));
}

function pick(headers, names) {
  return Object.fromEntries(names.filter((n) => headers[n] !== undefined).map((n) => [n, headers[n]]));
}

function operationOutcome(code, text) {
  return { resourceType: 'OperationOutcome', issue: [{ severity: 'error', code, diagnostics: text }] };
}

function sendJson(res, status, body, headers = {}) {
  res.writeHead(status, {
    'Content-Type': 'application/json; charset=utf-8',
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(JSON.stringify(body));
}

async function main() {
  const opts = options();
  const smart = new SmartServer(opts);
  await smart.issuer.keys.generate('RS256');
  const server = http.createServer((req, res) => {
    smart.handle(req, res).catch((err) => {
      console.error(err);
      if (!res.headersSent) {
        sendJson(res, 500, { error: 'server_error', error_description: String(err.message) });
      }
    });
  });
  await new Promise((resolve) => server.listen(opts.port, HOST, resolve));
  smart.issuer.url = `http://${HOST}:${server.address().port}`;
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  if (opts.stdinLifeline) {
    process.stdin.on('end', stop);
    process.stdin.resume();
  }
  console.log(`listening ${smart.origin} fhir ${smart.iss} upstream ${opts.upstream}`);
}

await main();
