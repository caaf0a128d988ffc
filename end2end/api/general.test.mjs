// General rules of the contract: /healthz, /openapi.json, how every JSON
// route reads its body, and GET on a route path rendering the web UI.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, request, post, assertJson, MSG, newCredentials, assertNotRegistered,
  paddedJson, newUserWithToken, onboard, dashboard,
} from './harness.mjs';

const MAX_BODY = 1024;
let server;

before(async () => {
  server = await startServer({ PEERVAULT_MAX_JSON_BODY_BYTES: MAX_BODY });
});
after(async () => { await server?.stop(); });

describe('GET /healthz', () => {
  it('answers 200 {"status":"ok"} as JSON', async () => {
    const res = await request(server, 'GET', '/healthz');
    assertJson(res, 200, { status: 'ok' });
  });
});

describe('GET /openapi.json', () => {
  const ROUTES = ['/register', '/login', '/android_auth', '/dashboard', '/onboarding', '/active_time', '/rateinout'];

  it('is a JSON OpenAPI 3 document with a POST operation for each seed route', async () => {
    const res = await request(server, 'GET', '/openapi.json');
    const doc = assertJson(res, 200);
    assert.equal(typeof doc.openapi, 'string', 'openapi key holds the version string');
    assert.match(doc.openapi, /^3\./);
    assert.equal(typeof doc.paths, 'object');
    for (const route of ROUTES) {
      assert.ok(doc.paths[route], `paths has no entry for ${route}`);
      assert.ok(doc.paths[route].post, `paths[${route}] has no post operation`);
    }
  });
});

describe('JSON body rules (POST /register, body limit set to 1024 bytes)', () => {
  it('reads an empty body without Content-Type as {} and reports the first missing field', async () => {
    const res = await post(server, '/register', {});
    assertJson(res, 400, MSG.missing('username'));
  });

  it('reads an empty body as {} whatever its Content-Type', async () => {
    const res = await post(server, '/register', { body: '', headers: { 'content-type': 'text/plain' } });
    assertJson(res, 400, MSG.missing('username'));
  });

  it('accepts application/json with a charset parameter', async () => {
    const creds = newCredentials();
    const res = await post(server, '/register', {
      body: JSON.stringify(creds), headers: { 'content-type': 'application/json; charset=utf-8' },
    });
    assertJson(res, 200, { message: 'User registered successfully' });
  });

  for (const [label, contentType] of [
    ['text/plain', 'text/plain'],
    ['a form content type', 'application/x-www-form-urlencoded'],
    ['no Content-Type at all', undefined],
  ]) {
    it(`rejects a JSON body sent with ${label} with 415 and registers nothing`, async () => {
      const creds = newCredentials();
      const headers = contentType ? { 'content-type': contentType } : {};
      const res = await post(server, '/register', { body: JSON.stringify(creds), headers });
      assertJson(res, 415, MSG.wrongContentType);
      await assertNotRegistered(server, creds);
    });
  }

  it('accepts a body of exactly the configured maximum size', async () => {
    const creds = newCredentials();
    const text = paddedJson(creds, MAX_BODY);
    assert.equal(Buffer.byteLength(text), MAX_BODY);
    const res = await post(server, '/register', { body: text, headers: { 'content-type': 'application/json' } });
    assertJson(res, 200, { message: 'User registered successfully' });
  });

  it('rejects a body one byte over the configured maximum with 413 and registers nothing', async () => {
    const creds = newCredentials();
    const text = paddedJson(creds, MAX_BODY + 1);
    const res = await post(server, '/register', { body: text, headers: { 'content-type': 'application/json' } });
    assertJson(res, 413, MSG.tooLarge);
    await assertNotRegistered(server, creds);
  });

  it('rejects a much larger body with 413', async () => {
    const creds = newCredentials();
    const text = paddedJson(creds, MAX_BODY * 16);
    const res = await post(server, '/register', { body: text, headers: { 'content-type': 'application/json' } });
    assertJson(res, 413, MSG.tooLarge);
    await assertNotRegistered(server, creds);
  });

  it('rejects invalid UTF-8 bytes with 400 and registers nothing', async () => {
    const creds = newCredentials();
    const [head, tail] = JSON.stringify(creds).split(creds.password);
    // invalid UTF-8 inside the password string: a lone continuation byte and 0xFF
    const body = Buffer.concat([Buffer.from(head), Buffer.from([0x70, 0x80, 0xff, 0x77]), Buffer.from(creds.password), Buffer.from(tail)]);
    const res = await post(server, '/register', { body, headers: { 'content-type': 'application/json' } });
    assertJson(res, 400, MSG.badUtf8);
    await assertNotRegistered(server, creds);
  });

  for (const [label, make] of [
    ['a truncated object', (c) => JSON.stringify(c).slice(0, -1)],
    ['a trailing comma', (c) => `${JSON.stringify(c).slice(0, -1)},}`],
    ['single-quoted strings', (c) => JSON.stringify(c).replaceAll('"', "'")],
    ['trailing garbage after the object', (c) => `${JSON.stringify(c)} x`],
    ['bare words', () => 'username=alice&password=secret'],
  ]) {
    it(`rejects malformed JSON (${label}) with 400 and registers nothing`, async () => {
      const creds = newCredentials();
      const res = await post(server, '/register', { body: make(creds), headers: { 'content-type': 'application/json' } });
      assertJson(res, 400, MSG.malformed);
      await assertNotRegistered(server, creds);
    });
  }

  for (const [label, make] of [
    ['an array holding the object', (c) => [c]],
    ['an array of the values', (c) => [c.username, c.password, c.email]],
    ['a string', (c) => c.username],
    ['a number', () => 42],
    ['null', () => null],
    ['true', () => true],
  ]) {
    it(`rejects a JSON body that is ${label} with 400 "must be a JSON object"`, async () => {
      const creds = newCredentials();
      const res = await post(server, '/register', { json: make(creds) });
      assertJson(res, 400, MSG.notObject);
      await assertNotRegistered(server, creds);
    });
  }

  for (const field of ['username', 'password', 'email']) {
    for (const [label, value] of [['a number', 12345678], ['a boolean', true], ['an array', ['x']], ['an object', { v: 'x' }]]) {
      it(`rejects ${field} given as ${label} with 400 "${field} must be a string"`, async () => {
        const creds = newCredentials();
        const res = await post(server, '/register', { json: { ...creds, [field]: value } });
        assertJson(res, 400, MSG.notString(field));
        await assertNotRegistered(server, creds);
      });
    }
  }
});

describe('JSON body rules on an authenticated route (POST /onboarding)', () => {
  let user;
  const PLEDGE = 2048;
  before(async () => {
    user = await newUserWithToken(server);
    await onboard(server, user.token, PLEDGE);
  });

  const assertPledgeUnchanged = async () => {
    assert.equal((await dashboard(server, user.token)).storage_rented, PLEDGE);
  };

  it('checks the token before the body: no token and a malformed body give 401 "Token is missing"', async () => {
    const res = await post(server, '/onboarding', { body: '{"storageRented":', headers: { 'content-type': 'application/json' } });
    assertJson(res, 401, MSG.tokenMissing);
  });

  it('checks the token before the body: a bad token and a wrong content type give 401 "Token is invalid"', async () => {
    const res = await post(server, '/onboarding', { token: 'not-a-jwt', body: 'storageRented=1', headers: { 'content-type': 'text/plain' } });
    assertJson(res, 401, MSG.tokenInvalid);
  });

  it('rejects a wrong content type with 415 and keeps the pledge', async () => {
    const res = await post(server, '/onboarding', {
      token: user.token, body: JSON.stringify({ storageRented: 4096 }), headers: { 'content-type': 'text/plain' },
    });
    assertJson(res, 415, MSG.wrongContentType);
    await assertPledgeUnchanged();
  });

  it('rejects an oversized body with 413 and keeps the pledge', async () => {
    const res = await post(server, '/onboarding', {
      token: user.token, body: paddedJson({ storageRented: 4096 }, MAX_BODY + 1), headers: { 'content-type': 'application/json' },
    });
    assertJson(res, 413, MSG.tooLarge);
    await assertPledgeUnchanged();
  });

  it('rejects invalid UTF-8 with 400 and keeps the pledge', async () => {
    const body = Buffer.concat([Buffer.from('{"storageRented":4096,"x":"'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]);
    const res = await post(server, '/onboarding', { token: user.token, body, headers: { 'content-type': 'application/json' } });
    assertJson(res, 400, MSG.badUtf8);
    await assertPledgeUnchanged();
  });

  it('rejects malformed JSON with 400 and keeps the pledge', async () => {
    const res = await post(server, '/onboarding', { token: user.token, body: '{"storageRented":4096', headers: { 'content-type': 'application/json' } });
    assertJson(res, 400, MSG.malformed);
    await assertPledgeUnchanged();
  });

  it('rejects a JSON array body with 400 and keeps the pledge', async () => {
    const res = await post(server, '/onboarding', { token: user.token, json: [{ storageRented: 4096 }] });
    assertJson(res, 400, MSG.notObject);
    await assertPledgeUnchanged();
  });
});

describe('GET on a route path', () => {
  for (const route of ['/login', '/register']) {
    it(`GET ${route} renders an HTML page, not JSON`, async () => {
      const res = await request(server, 'GET', route);
      assert.equal(res.status, 200, res.text.slice(0, 300));
      assert.match(String(res.headers['content-type']), /^text\/html\b/i);
    });
  }
});
