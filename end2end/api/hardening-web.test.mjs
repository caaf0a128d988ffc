// Hardening of the web UI's HTTP surface: log_in's `next` never leads off
// the site (nor breaks the answer), every response carries the security
// headers (pages a CSP with a per-response script nonce), a wrong method is
// a JSON 405 with Allow, and server functions answer with real statuses.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, request, post, assertJson, registerUser, newUserWithToken, newCredentials, dashboard,
  onboard, uniqueIp, uniqueSuffix, serverFn, webLogin, sessionCookieOf, assertFnError,
} from './harness.mjs';

let server;
before(async () => {
  // many accounts are registered from 127.0.0.1 here: keep the registration budget out of the way
  server = await startServer({ PEERVAULT_REGISTER_MAX_PER_IP: 1_000_000 });
});
after(async () => { await server?.stop(); });

/** What a browser's plain (no JavaScript) form post asks for. */
const HTML_ACCEPT = 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8';

// ---------------------------------------------------------------------------
// log_in's `next`
// ---------------------------------------------------------------------------

describe('log_in never redirects off the site', () => {
  let user;
  before(async () => { user = await registerUser(server); });

  const EVIL_NEXTS = [
    ['a tab between the slashes ("%2F%09%2Fevil.example%2Fx" decoded)', '/\t/evil.example/x'],
    ['two tabs between the slashes', '/\t\t/evil.example/x'],
    ['a protocol-relative URL', '//evil.example'],
    ['a slash and a backslash', '/\\evil.example'],
    ['two backslashes', '\\\\evil.example'],
    ['an absolute URL', 'https://evil.example'],
    ['encoded slashes', '/%2F%2Fevil.example'],
    ['an encoded backslash', '/%5Cevil.example'],
    ['a scheme with a single slash', 'http:/evil.example'],
    ['a newline between the slashes', '/\n/evil.example'],
    ['a header injection', '/\r\nSet-Cookie: x=y'],
    ['a leading space', ' /files'],
  ];

  const logIn = (next, accept) => serverFn(server, 'log_in', { username: user.username, password: user.password, next }, { accept, localAddress: uniqueIp() });

  function assertStaysHome(res, expected, ctx) {
    const seen = `${res.status} ${JSON.stringify(res.headers)} ${res.text.slice(0, 300)}`;
    assert.notEqual(res.status, 500, `${ctx}: ${seen}`);
    assert.ok(!JSON.stringify(res.headers).includes('evil'), `${ctx}: a header names the other site: ${seen}`);
    assert.ok(!(String(res.headers['set-cookie'] ?? '')).includes('x=y'), `${ctx}: an injected cookie: ${seen}`);
    assert.ok(sessionCookieOf(res), `${ctx}: the login set no session cookie: ${seen}`);
    if (res.headers.location !== undefined) assert.equal(res.headers.location, expected, `${ctx}: Location: ${seen}`);
    const sfr = res.headers.serverfnredirect;
    if (sfr !== undefined && sfr !== '') assert.equal(sfr, expected, `${ctx}: serverfnredirect: ${seen}`);
  }

  for (const [label, next] of EVIL_NEXTS) {
    it(`next = ${label} ${JSON.stringify(next)}, plain form post → redirect to /dashboard`, async () => {
      const res = await logIn(next, HTML_ACCEPT);
      assert.ok(res.status === 302 || res.status === 303, `expected a redirect, got ${res.status} ${res.text.slice(0, 300)}`);
      assert.equal(res.headers.location, '/dashboard');
      assertStaysHome(res, '/dashboard', 'plain form post');
    });

    it(`next = ${label} ${JSON.stringify(next)}, JSON → /dashboard`, async () => {
      const res = await logIn(next, 'application/json');
      assert.equal(res.status, 200, `${res.status} ${res.text.slice(0, 300)}`);
      assertStaysHome(res, '/dashboard', 'JSON');
    });
  }

  it('a local next ("/files?x=1") is kept, for a plain form post and for JSON', async () => {
    const html = await logIn('/files?x=1', HTML_ACCEPT);
    assert.ok(html.status === 302 || html.status === 303, `${html.status} ${html.text.slice(0, 300)}`);
    assert.equal(html.headers.location, '/files?x=1');
    assertStaysHome(html, '/files?x=1', 'plain form post');
    const json = await logIn('/files?x=1', 'application/json');
    assert.equal(json.status, 200, json.text.slice(0, 300));
    assert.equal(json.headers.location, '/files?x=1');
    assertStaysHome(json, '/files?x=1', 'JSON');
  });

  it('GET /login?next=%2F%09%2Fevil.example%2Fx renders the login page', async () => {
    const res = await request(server, 'GET', '/login?next=%2F%09%2Fevil.example%2Fx');
    assert.equal(res.status, 200, res.text.slice(0, 300));
    assert.match(String(res.headers['content-type']), /^text\/html\b/i);
  });
});

// ---------------------------------------------------------------------------
// Security headers
// ---------------------------------------------------------------------------

describe('security headers on every response', () => {
  let user;
  before(async () => {
    user = await newUserWithToken(server);
    await onboard(server, user.token, 2048);
  });

  /** The user's web session cookie, logged in on first use (so only the tests that need it depend on it). */
  async function cookie() {
    user.cookie ??= await webLogin(server, user);
    return user.cookie;
  }
  const withCookie = async () => ({ headers: { cookie: await cookie() } });
  /** [label, () => response, must it say Cache-Control: no-store]. */
  const TARGETS = [
    ['GET /', () => request(server, 'GET', '/'), false],
    ['GET /login', () => request(server, 'GET', '/login'), false],
    ['GET /register', () => request(server, 'GET', '/register'), false],
    ['GET /dashboard (signed in)', async () => request(server, 'GET', '/dashboard', await withCookie()), true],
    ['GET /account (signed in)', async () => request(server, 'GET', '/account', await withCookie()), true],
    ['GET /files (signed in)', async () => request(server, 'GET', '/files', await withCookie()), true],
    ['GET /files (signed out)', () => request(server, 'GET', '/files'), false],
    ['GET of a page that does not exist', () => request(server, 'GET', `/no-such-page-${uniqueSuffix()}`), false],
    ['GET /healthz', () => request(server, 'GET', '/healthz'), false],
    ['POST /login', () => post(server, '/login', { json: { username: user.username, password: user.password }, localAddress: uniqueIp() }), true],
    ['POST /login (wrong password)', () => post(server, '/login', { json: { username: user.username, password: 'not-the-password' }, localAddress: uniqueIp() }), false],
    ['POST /dashboard', () => post(server, '/dashboard', { token: user.token }), true],
    ['POST /dashboard (no token)', () => post(server, '/dashboard', {}), false],
    ['POST /api/account_info', async () => serverFn(server, 'account_info', {}, { cookie: await cookie() }), true],
    ['GET /openapi.json', () => request(server, 'GET', '/openapi.json'), false],
    ['GET /pkg/peervault.css', () => request(server, 'GET', '/pkg/peervault.css'), false],
  ];

  for (const [label, send, noStore] of TARGETS) {
    it(`${label}: nosniff, DENY, same-origin referrer${noStore ? ', no-store' : ''}`, async () => {
      const res = await send();
      const ctx = `${res.status} ${JSON.stringify(res.headers)}`;
      assert.equal(String(res.headers['x-content-type-options']).toLowerCase(), 'nosniff', `X-Content-Type-Options: ${ctx}`);
      assert.equal(String(res.headers['x-frame-options']).toUpperCase(), 'DENY', `X-Frame-Options: ${ctx}`);
      assert.equal(String(res.headers['referrer-policy']).toLowerCase(), 'same-origin', `Referrer-Policy: ${ctx}`);
      if (noStore) {
        const directives = String(res.headers['cache-control'] ?? '').split(',').map((d) => d.trim().toLowerCase());
        assert.ok(directives.includes('no-store'), `Cache-Control: ${ctx}`);
      }
    });
  }

  /** The CSP's directives as { name: [tokens] }. */
  function csp(res) {
    const value = res.headers['content-security-policy'];
    assert.ok(value, `no Content-Security-Policy: ${JSON.stringify(res.headers)}`);
    const out = {};
    for (const part of String(value).split(';')) {
      const [name, ...tokens] = part.trim().split(/\s+/);
      if (name) out[name.toLowerCase()] = tokens;
    }
    return out;
  }

  /** The nonce of the CSP's script-src, checked against every <script> tag of the page. */
  function nonceOf(res, label) {
    const policy = csp(res);
    for (const [name, token] of [['frame-ancestors', "'none'"], ['default-src', "'self'"], ['object-src', "'none'"], ['base-uri', "'none'"]]) {
      assert.ok(policy[name]?.includes(token), `${label}: CSP has no "${name} ${token}": ${res.headers['content-security-policy']}`);
    }
    const scriptSrc = policy['script-src'];
    assert.ok(scriptSrc, `${label}: CSP has no script-src: ${res.headers['content-security-policy']}`);
    const nonces = scriptSrc.map((t) => /^'nonce-([^']+)'$/.exec(t)?.[1]).filter(Boolean);
    assert.equal(nonces.length, 1, `${label}: script-src needs exactly one nonce: ${scriptSrc.join(' ')}`);
    const [nonce] = nonces;
    assert.ok(nonce.length >= 16, `${label}: nonce ${nonce} is too short to be unguessable`);
    const tags = res.text.match(/<script\b[^>]*>/gi) ?? [];
    assert.ok(tags.length > 0, `${label}: the page has no <script> tag`);
    for (const tag of tags) {
      const attr = /\snonce\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s>]+))/i.exec(tag);
      assert.ok(attr, `${label}: a <script> tag without a nonce: ${tag}`);
      assert.equal(attr[1] ?? attr[2] ?? attr[3], nonce, `${label}: a <script> tag whose nonce is not the CSP's: ${tag}`);
    }
    return nonce;
  }

  const PAGES = [
    ['GET /', () => request(server, 'GET', '/')],
    ['GET /login', () => request(server, 'GET', '/login')],
    ['GET /register', () => request(server, 'GET', '/register')],
    ['GET /dashboard (signed in)', async () => request(server, 'GET', '/dashboard', await withCookie())],
    ['GET /account (signed in)', async () => request(server, 'GET', '/account', await withCookie())],
    ['GET /files (signed in)', async () => request(server, 'GET', '/files', await withCookie())],
    ['GET /onboarding (signed in)', async () => request(server, 'GET', '/onboarding', await withCookie())],
    ['GET of a page that does not exist', () => request(server, 'GET', `/no-such-page-${uniqueSuffix()}`)],
  ];

  for (const [label, load] of PAGES) {
    it(`${label}: a CSP (frame-ancestors, default-src, object-src, base-uri) whose script nonce is on every <script> and new on each load`, async () => {
      const first = await load();
      assert.match(String(first.headers['content-type']), /^text\/html\b/i, `${label}: ${first.status} ${first.text.slice(0, 200)}`);
      const second = await load();
      const a = nonceOf(first, label);
      const b = nonceOf(second, label);
      assert.notEqual(a, b, `${label}: two loads had the same nonce`);
    });
  }
});

// ---------------------------------------------------------------------------
// Methods and statuses
// ---------------------------------------------------------------------------

describe('a wrong method is a JSON 405 with Allow', () => {
  for (const [method, path, allowed] of [
    ['PUT', '/login', 'POST'],
    ['DELETE', '/dashboard', 'POST'],
    ['OPTIONS', '/register', 'POST'],
    ['POST', '/healthz', 'GET'],
  ]) {
    it(`${method} ${path} → 405 {"message":"Method not allowed"}, Allow names ${allowed}`, async () => {
      const res = await request(server, method, path, { json: {} });
      assertJson(res, 405, { message: 'Method not allowed' });
      const allow = String(res.headers.allow ?? '').split(',').map((m) => m.trim().toUpperCase());
      assert.ok(allow.includes(allowed), `Allow: ${res.headers.allow}`);
    });
  }
});

describe('server functions answer with real statuses', () => {
  it('rotate_peer_id without a session → 401 "Please log in again"', async () => {
    assertFnError(await serverFn(server, 'rotate_peer_id', {}), 401, 'Please log in again');
  });

  /** Asserts a 400 with some message (never a 500) for a call missing an argument. */
  function assertMissingArg(res, what) {
    const ctx = `${what}: ${res.status} ${res.text.slice(0, 300)}`;
    assert.equal(res.status, 400, ctx);
    assert.ok(res.json && typeof res.json.message === 'string' && res.json.message.length > 0, ctx);
  }

  it('log_in without a password → 400', async () => {
    const user = await registerUser(server);
    const res = await serverFn(server, 'log_in', { username: user.username }, { localAddress: uniqueIp() });
    assertMissingArg(res, 'log_in');
    assert.equal(sessionCookieOf(res), null);
  });

  it('register_account without a password → 400, nothing registered', async () => {
    const creds = newCredentials();
    assertMissingArg(await serverFn(server, 'register_account', { username: creds.username, email: creds.email }), 'register_account');
    assertJson(await post(server, '/register', { json: creds }), 200, { message: 'User registered successfully' });
  });

  it('change_password without new_password → 400, password unchanged', async () => {
    const user = await newUserWithToken(server);
    const cookie = await webLogin(server, user);
    assertMissingArg(await serverFn(server, 'change_password', { current_password: user.password }, { cookie }), 'change_password');
    assert.equal((await dashboard(server, user.token)).username, user.username);
  });

  it('delete_account without confirm → 400, the account still exists', async () => {
    const user = await newUserWithToken(server);
    const cookie = await webLogin(server, user);
    assertMissingArg(await serverFn(server, 'delete_account', {}, { cookie }), 'delete_account');
    assert.equal((await dashboard(server, user.token)).username, user.username);
  });

  it('pledge_storage without unit → 400, pledge unchanged', async () => {
    const user = await newUserWithToken(server);
    await onboard(server, user.token, 2048);
    const cookie = await webLogin(server, user);
    assertMissingArg(await serverFn(server, 'pledge_storage', { amount: 5 }, { cookie }), 'pledge_storage');
    assert.equal((await dashboard(server, user.token)).storage_rented, 2048);
  });

  it('reset_with_code without a code → 400', async () => {
    const user = await registerUser(server);
    assertMissingArg(await serverFn(server, 'reset_with_code', { email: user.email, new_password: 'whatever-long' }, { localAddress: uniqueIp() }), 'reset_with_code');
  });

  it('nothing above (crafted `next` values, missing arguments) made the server panic', () => {
    assert.ok(!server.stderr().includes('panicked'), server.stderr().split('\n').filter((l) => l.includes('panicked')).join('\n'));
  });
});
