// POST /login {username, password}
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, post, assertJson, MSG, registerUser, loginUser, dashboard, decodeJwt,
  newCredentials, uniqueIp,
} from './harness.mjs';

const USER_TOKEN_TTL = 86_400; // default user_token_ttl_secs (24 h)

let server;
let user;
before(async () => {
  server = await startServer();
  user = await registerUser(server);
});
after(async () => { await server?.stop(); });

const login = (json, localAddress = uniqueIp()) => post(server, '/login', { json, localAddress });

describe('POST /login', () => {
  it('logs in with the username and returns a 24 h HS256 user token that opens the dashboard', async () => {
    const res = await login({ username: user.username, password: user.password });
    const body = assertJson(res, 200);
    assert.deepStrictEqual(Object.keys(body), ['token']);
    const { header, payload } = decodeJwt(body.token);
    assert.equal(header.alg, 'HS256');
    assert.equal(payload.kind, 'user');
    assert.equal(typeof payload.sub, 'string');
    assert.ok(Number.isInteger(payload.iat) && Number.isInteger(payload.exp));
    assert.equal(payload.exp - payload.iat, USER_TOKEN_TTL);
    assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 60, 'iat is now');
    assert.ok('ver' in payload, 'token carries a token version');
    assert.equal((await dashboard(server, body.token)).username, user.username);
  });

  it('logs in with the email in the username field, into the same account', async () => {
    const byName = decodeJwt(await loginUser(server, user)).payload.sub;
    const res = await login({ username: user.email, password: user.password });
    const { token } = assertJson(res, 200);
    assert.equal(decodeJwt(token).payload.sub, byName);
    assert.equal((await dashboard(server, token)).username, user.username);
  });

  it('rejects a wrong password with 401 "Invalid username or password"', async () => {
    const res = await login({ username: user.username, password: `${user.password}x` });
    assertJson(res, 401, MSG.badLogin);
  });

  it('rejects a wrong password given with the email the same way', async () => {
    const res = await login({ username: user.email, password: `${user.password}x` });
    assertJson(res, 401, MSG.badLogin);
  });

  it('rejects an unknown user with exactly the same 401 response as a wrong password', async () => {
    const other = await registerUser(server);
    const wrongPw = await login({ username: other.username, password: `${other.password}x` });
    const unknown = await login({ username: newCredentials().username, password: other.password });
    const unknownEmail = await login({ username: newCredentials().email, password: other.password });
    assertJson(unknown, 401, MSG.badLogin);
    assertJson(unknownEmail, 401, MSG.badLogin);
    assertJson(wrongPw, 401, MSG.badLogin);
    assert.equal(unknown.text, wrongPw.text, 'byte-identical bodies');
    assert.equal(unknown.headers['content-type'], wrongPw.headers['content-type']);
  });

  it('a failed login changes nothing: the right password still works afterwards', async () => {
    const other = await registerUser(server);
    assertJson(await login({ username: other.username, password: 'wrong-password' }), 401, MSG.badLogin);
    await loginUser(server, other, { localAddress: uniqueIp() });
  });

  it('rejects the password of another account', async () => {
    const a = await registerUser(server);
    const b = await registerUser(server);
    assertJson(await login({ username: a.username, password: b.password }), 401, MSG.badLogin);
  });

  it('answers an unknown user about as slowly as a wrong password (no user-enumeration timing)', async () => {
    const victim = await registerUser(server);
    const wrong = [];
    const unknown = [];
    const timed = async (json) => {
      const t = process.hrtime.bigint();
      const res = await login(json);
      assertJson(res, 401, MSG.badLogin);
      return Number(process.hrtime.bigint() - t) / 1e6;
    };
    // interleaved, 5 each: stays under the default per-account budget of 10
    for (let i = 0; i < 5; i += 1) {
      wrong.push(await timed({ username: victim.username, password: `wrong-${i}-password` }));
      unknown.push(await timed({ username: newCredentials().username, password: `wrong-${i}-password` }));
    }
    const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];
    const mWrong = median(wrong);
    const mUnknown = median(unknown);
    assert.ok(
      mUnknown >= mWrong * 0.3,
      `unknown user answered in ${mUnknown.toFixed(1)} ms vs ${mWrong.toFixed(1)} ms for a wrong password: the password hash is skipped`,
    );
  });

  describe('bad input', () => {
    for (const [label, body, expected] of [
      ['an empty object', {}, MSG.missing('username')],
      ['no username', { password: 'whatever-password' }, MSG.missing('username')],
      ['no password', { username: 'someone' }, MSG.missing('password')],
      ['a numeric username', { username: 12345, password: 'whatever-password' }, MSG.notString('username')],
      ['an object password', { username: 'someone', password: { p: 1 } }, MSG.notString('password')],
      ['a boolean password', { username: 'someone', password: true }, MSG.notString('password')],
    ]) {
      it(`${label} → 400 ${JSON.stringify(expected)}`, async () => {
        assertJson(await login(body), 400, expected);
      });
    }

    it('a missing password for a real user is 400 and does not log in', async () => {
      const res = await login({ username: user.username });
      assertJson(res, 400, MSG.missing('password'));
      assert.equal(res.json.token, undefined);
    });

    it('an empty body → 400 "Missing username field in request body"', async () => {
      assertJson(await post(server, '/login', { localAddress: uniqueIp() }), 400, MSG.missing('username'));
    });

    it('a wrong content type → 415', async () => {
      const res = await post(server, '/login', {
        body: JSON.stringify({ username: user.username, password: user.password }),
        headers: { 'content-type': 'text/plain' }, localAddress: uniqueIp(),
      });
      assertJson(res, 415, MSG.wrongContentType);
    });

    it('malformed JSON → 400', async () => {
      const res = await post(server, '/login', {
        body: `{"username":"${user.username}","password":`, headers: { 'content-type': 'application/json' }, localAddress: uniqueIp(),
      });
      assertJson(res, 400, MSG.malformed);
    });

    it('a JSON array → 400 "Request body must be a JSON object"', async () => {
      assertJson(await login([user.username, user.password]), 400, MSG.notObject);
    });
  });
});
