// POST /register {username, password, email}
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, post, assertJson, MSG, newCredentials, registerUser, loginUser, dashboard,
  assertNotRegistered, paddedJson, uniqueIp, uniqueSuffix,
} from './harness.mjs';

const OK = { message: 'User registered successfully' };
const BAD_USERNAME = { message: "Username must be 3 to 32 characters: letters, digits, '_', '.' or '-'" };
const BAD_EMAIL = { message: 'Invalid email address' };
const SHORT_PASSWORD = { message: 'Password must be at least 8 characters' };
const LONG_PASSWORD = { message: 'Password must be at most 1024 characters' };
const DEFAULT_MAX_BODY = 64 * 1024;

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

/** Case-swap every letter of s. */
const swapCase = (s) => [...s].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');

const badLogin = async (username, password) => {
  const res = await post(server, '/login', { json: { username, password }, localAddress: uniqueIp() });
  assertJson(res, 401, MSG.badLogin);
};

describe('POST /register', () => {
  it('registers a new user, who can then log in and sees their own username on the dashboard', async () => {
    const creds = newCredentials();
    const res = await post(server, '/register', { json: creds });
    assertJson(res, 200, OK);
    const token = await loginUser(server, creds);
    assert.equal((await dashboard(server, token)).username, creds.username);
  });

  it('rejects a username taken in another letter case with 409 and keeps the first account as it was', async () => {
    const first = await registerUser(server, { username: `Case_${uniqueSuffix()}` });
    const second = newCredentials({ username: swapCase(first.username) });
    const res = await post(server, '/register', { json: second });
    assertJson(res, 409, MSG.userExists);
    // the first account still logs in with its own password, not the second one
    await loginUser(server, first);
    await badLogin(first.username, second.password);
    await badLogin(second.username, second.password);
    // the second email was not consumed
    const again = await post(server, '/register', { json: newCredentials({ email: second.email }) });
    assertJson(again, 200, OK);
  });

  it('rejects the exact same username with 409', async () => {
    const first = await registerUser(server);
    const res = await post(server, '/register', { json: newCredentials({ username: first.username }) });
    assertJson(res, 409, MSG.userExists);
    await loginUser(server, first);
  });

  it('rejects an email already in use with 409 and leaves the new username free', async () => {
    const first = await registerUser(server);
    const second = newCredentials({ email: first.email });
    const res = await post(server, '/register', { json: second });
    assertJson(res, 409, MSG.userExists);
    await loginUser(server, first);
    await badLogin(first.email, second.password);
    await badLogin(second.username, second.password);
    const again = await post(server, '/register', { json: { ...newCredentials(), username: second.username } });
    assertJson(again, 200, OK);
  });

  it('a user registered twice with identical data gets 409 the second time', async () => {
    const creds = await registerUser(server);
    const res = await post(server, '/register', { json: creds });
    assertJson(res, 409, MSG.userExists);
  });

  describe('missing fields', () => {
    // fields are checked in the order the contract lists them: username, password, email
    for (const [label, omit, field] of [
      ['an empty object', ['username', 'password', 'email'], 'username'],
      ['no username', ['username'], 'username'],
      ['no password', ['password'], 'password'],
      ['no email', ['email'], 'email'],
      ['only a username', ['password', 'email'], 'password'],
      ['only an email', ['username', 'password'], 'username'],
    ]) {
      it(`${label} → 400 "Missing ${field} field in request body", nothing registered`, async () => {
        const creds = newCredentials();
        const body = { ...creds };
        for (const k of omit) delete body[k];
        const res = await post(server, '/register', { json: body });
        assertJson(res, 400, MSG.missing(field));
        await assertNotRegistered(server, creds);
      });
    }
  });

  describe('username rules (3–32 of [A-Za-z0-9_.-])', () => {
    const tooShort = 'ab';
    const tooLong = `u${'x'.repeat(32)}`;
    for (const [label, username] of [
      ['2 characters', tooShort],
      ['33 characters', tooLong],
      ['empty', ''],
      ['a space', 'bad name'],
      ['a slash', 'bad/name'],
      ['an @', 'bad@name'],
      ['non-ASCII letters', 'ñandú_user'],
      ['an emoji', 'user_😀'],
      ['a newline', 'user\nname'],
    ]) {
      it(`rejects a username with ${label} with 400, nothing registered`, async () => {
        const creds = newCredentials({ username });
        const res = await post(server, '/register', { json: creds });
        assertJson(res, 400, BAD_USERNAME);
        await assertNotRegistered(server, creds, { usernameValid: false });
      });
    }

    it('accepts usernames of exactly 3 and exactly 32 characters using every allowed punctuation', async () => {
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
      const three = Array.from(crypto.randomBytes(3), (b) => alphabet[b % alphabet.length]).join('');
      const s = uniqueSuffix();
      const thirtyTwo = `A.b-c_${s}`.padEnd(32, 'z');
      assert.equal(three.length, 3);
      assert.equal(thirtyTwo.length, 32);
      for (const username of [three, thirtyTwo]) {
        const creds = newCredentials({ username, email: `e${uniqueSuffix()}@example.com` });
        assertJson(await post(server, '/register', { json: creds }), 200, OK);
        const token = await loginUser(server, creds);
        assert.equal((await dashboard(server, token)).username, username);
      }
    });
  });

  describe('email rules', () => {
    for (const [label, email] of [
      ['no @', 'not-an-email'],
      ['nothing after the @', 'user@'],
      ['nothing before the @', '@example.com'],
      ['two @', 'a@b@example.com'],
      ['a space', 'us er@example.com'],
      ['an empty string', ''],
    ]) {
      it(`rejects an email with ${label} with 400 "Invalid email address", nothing registered`, async () => {
        const creds = newCredentials({ email });
        const res = await post(server, '/register', { json: creds });
        assertJson(res, 400, BAD_EMAIL);
        await assertNotRegistered(server, creds, { emailValid: false });
      });
    }
  });

  describe('password rules (8–1024 characters)', () => {
    it('rejects a 7-character password with 400, nothing registered', async () => {
      const creds = newCredentials({ password: 'a'.repeat(7) });
      assertJson(await post(server, '/register', { json: creds }), 400, SHORT_PASSWORD);
      await assertNotRegistered(server, creds);
    });

    it('counts characters, not bytes: 7 two-byte characters are still too short', async () => {
      const creds = newCredentials({ password: 'é'.repeat(7) });
      assert.ok(Buffer.byteLength(creds.password) >= 8);
      assertJson(await post(server, '/register', { json: creds }), 400, SHORT_PASSWORD);
      await assertNotRegistered(server, creds);
    });

    it('rejects an empty password with 400', async () => {
      const creds = newCredentials({ password: '' });
      assertJson(await post(server, '/register', { json: creds }), 400, SHORT_PASSWORD);
      await assertNotRegistered(server, creds);
    });

    it('accepts an 8-character password, which then logs in', async () => {
      const creds = newCredentials({ password: `${uniqueSuffix()}`.slice(0, 8).padEnd(8, 'p') });
      assert.equal(creds.password.length, 8);
      assertJson(await post(server, '/register', { json: creds }), 200, OK);
      await loginUser(server, creds);
    });

    it('accepts a 1024-character password and rejects a 1025-character one', async () => {
      const ok = newCredentials({ password: `${uniqueSuffix()}`.padEnd(1024, 'p') });
      assertJson(await post(server, '/register', { json: ok }), 200, OK);
      await loginUser(server, ok);
      const bad = newCredentials({ password: 'p'.repeat(1025) });
      assertJson(await post(server, '/register', { json: bad }), 400, LONG_PASSWORD);
      await assertNotRegistered(server, bad);
    });
  });

  it('rejects a body over the default 64 KiB with 413, nothing registered', async () => {
    const creds = newCredentials();
    const res = await post(server, '/register', {
      body: paddedJson(creds, DEFAULT_MAX_BODY + 1), headers: { 'content-type': 'application/json' },
    });
    assertJson(res, 413, MSG.tooLarge);
    await assertNotRegistered(server, creds);
  });

  it('accepts a body of exactly 64 KiB', async () => {
    const creds = newCredentials();
    const res = await post(server, '/register', {
      body: paddedJson(creds, DEFAULT_MAX_BODY), headers: { 'content-type': 'application/json' },
    });
    assertJson(res, 200, OK);
  });

  it('rejects malformed JSON with 400, nothing registered', async () => {
    const creds = newCredentials();
    const res = await post(server, '/register', { body: JSON.stringify(creds).slice(0, -2), headers: { 'content-type': 'application/json' } });
    assertJson(res, 400, MSG.malformed);
    await assertNotRegistered(server, creds);
  });

  it('rejects a username that is not a string with 400, nothing registered', async () => {
    const creds = newCredentials();
    const res = await post(server, '/register', { json: { ...creds, username: 123456 } });
    assertJson(res, 400, MSG.notString('username'));
    await assertNotRegistered(server, creds);
  });
});
