// The test clock (PEERVAULT_TEST_CLOCK): POST /test/clock moves a test
// server's clock forward, so what depends on time (token and link expiry,
// throttle windows) is tested by moving it instead of sleeping. Without the
// setting the route does not exist.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, request, post, assertJson, MSG, newUserWithToken, dashboard, uploadFile, downloadLink,
  advanceClock, TEST_CLOCK, uniqueIp, loginUser,
} from './harness.mjs';

const LINK_TTL_S = 120;
const TOKEN_TTL_S = 3600;
const WINDOW_S = 900;
const LINK_EXPIRED = { message: 'Download link is invalid or has expired' };

const linkPath = (url) => { const u = new URL(url); return u.pathname + u.search; };

describe('without PEERVAULT_TEST_CLOCK', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  it('POST /test/clock is not a route (404) and moves nothing', async () => {
    const user = await newUserWithToken(server);
    const res = await post(server, '/test/clock', { json: { advance_ms: 400 * 86_400_000 } });
    assert.equal(res.status, 404, res.text);
    assert.equal((await post(server, '/dashboard', { token: user.token })).status, 200, 'the token still works');
  });
});

describe('with PEERVAULT_TEST_CLOCK', () => {
  let server;
  before(async () => {
    server = await startServer({
      ...TEST_CLOCK,
      PEERVAULT_DOWNLOAD_LINK_TTL_SECS: LINK_TTL_S,
      PEERVAULT_USER_TOKEN_TTL_SECS: TOKEN_TTL_S,
      PEERVAULT_THROTTLE_WINDOW_SECS: WINDOW_S,
      PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT: 3,
    });
  });
  after(async () => { await server?.stop(); });

  for (const [label, json, message] of [
    ['no advance_ms', {}, 'Missing advance_ms field in request body'],
    ['a string', { advance_ms: '1000' }, 'advance_ms must be a whole number of milliseconds'],
    ['a fraction', { advance_ms: 1.5 }, 'advance_ms must be a whole number of milliseconds'],
    ['a negative amount (the clock never goes back)', { advance_ms: -1000 }, 'advance_ms must be 0 to 31622400000'],
    ['more than a year', { advance_ms: 31_622_400_001 }, 'advance_ms must be 0 to 31622400000'],
  ]) {
    it(`${label} → 400 ${JSON.stringify(message)}, the clock unmoved`, async () => {
      const before = (await post(server, '/test/clock', { json: { advance_ms: 0 } })).json.now_ms;
      assertJson(await post(server, '/test/clock', { json }), 400, { message });
      const after = await advanceClock(server, 0);
      assert.ok(after - before < 5_000, `the clock moved by ${after - before} ms`);
    });
  }

  it('a link works until its lifetime is over, then 403; a login token likewise turns 401', async () => {
    const user = await newUserWithToken(server);
    const bytes = Buffer.from('expiring content');
    const { cid } = await uploadFile(server, user.token, bytes, { filename: 'e.txt' });
    const url = await downloadLink(server, user.token, cid);
    await advanceClock(server, (LINK_TTL_S - 5) * 1000);
    const fresh = await request(server, 'GET', linkPath(url));
    assert.equal(fresh.status, 200);
    assert.ok(fresh.raw.equals(bytes));
    await advanceClock(server, 6_000);
    assertJson(await request(server, 'GET', linkPath(url)), 403, LINK_EXPIRED);
    // the login token was issued before the link: its hour ends after it
    assert.equal((await post(server, '/dashboard', { token: user.token })).status, 200);
    await advanceClock(server, TOKEN_TTL_S * 1000);
    assertJson(await post(server, '/dashboard', { token: user.token }), 401, MSG.tokenInvalid);
    // a new login gets a new token that works, and a new link
    const again = await loginUser(server, user);
    assert.equal((await dashboard(server, again)).username, user.username);
  });

  it('a throttled account is let in again once the window is over', async () => {
    const user = await newUserWithToken(server);
    const ip = uniqueIp();
    for (let i = 0; i < 3; i += 1) {
      assertJson(await post(server, '/login', { json: { username: user.username, password: `wrong-${i}` }, localAddress: ip }), 401, MSG.badLogin);
    }
    assertJson(await post(server, '/login', { json: { username: user.username, password: user.password }, localAddress: ip }), 429, MSG.tooMany);
    await advanceClock(server, (WINDOW_S - 10) * 1000);
    assertJson(await post(server, '/login', { json: { username: user.username, password: user.password }, localAddress: ip }), 429, MSG.tooMany);
    await advanceClock(server, 11_000);
    const res = await post(server, '/login', { json: { username: user.username, password: user.password }, localAddress: ip });
    assert.equal(res.status, 200, res.text);
  });
});
