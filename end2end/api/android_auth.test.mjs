// POST /android_auth {username, peerId}
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, post, assertJson, MSG, newUserWithToken, dashboard, decodeJwt, newCredentials, uniqueIp,
} from './harness.mjs';

const DEVICE_TOKEN_TTL = 2_592_000; // default device_token_ttl_secs (30 days)

let server;
let alice;
let bob;
before(async () => {
  server = await startServer();
  alice = await newUserWithToken(server);
  alice.peerId = (await dashboard(server, alice.token)).peerId;
  bob = await newUserWithToken(server);
  bob.peerId = (await dashboard(server, bob.token)).peerId;
});
after(async () => { await server?.stop(); });

const auth = (json) => post(server, '/android_auth', { json, localAddress: uniqueIp() });

/** Swap the case of every letter (base58 is case-sensitive). */
const swapCase = (s) => [...s].map((c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase())).join('');

describe('POST /android_auth', () => {
  it('returns a 30-day device token for the username and its peerId', async () => {
    const res = await auth({ username: alice.username, peerId: alice.peerId });
    const body = assertJson(res, 200);
    assert.deepStrictEqual(Object.keys(body), ['token']);
    const { header, payload } = decodeJwt(body.token);
    assert.equal(header.alg, 'HS256');
    assert.equal(payload.kind, 'device');
    assert.equal(payload.exp - payload.iat, DEVICE_TOKEN_TTL);
    assert.equal(payload.sub, decodeJwt(alice.token).payload.sub, 'same account as the user token');
  });

  it('the device token opens the dashboard of its own account', async () => {
    const { token } = assertJson(await auth({ username: alice.username, peerId: alice.peerId }), 200);
    const dash = await dashboard(server, token);
    assert.equal(dash.username, alice.username);
    assert.equal(dash.peerId, alice.peerId);
  });

  it('works with the raw token and with the Bearer form', async () => {
    const { token } = assertJson(await auth({ username: bob.username, peerId: bob.peerId }), 200);
    assertJson(await post(server, '/dashboard', { token }), 200);
    assertJson(await post(server, '/dashboard', { token: `Bearer ${token}` }), 200);
  });

  it('rejects a wrong peerId with 401 "Invalid username or PeerID"', async () => {
    const wrong = `${alice.peerId.slice(0, -1)}${alice.peerId.endsWith('2') ? '3' : '2'}`;
    assertJson(await auth({ username: alice.username, peerId: wrong }), 401, MSG.badDevice);
  });

  it("rejects another account's peerId with 401", async () => {
    assertJson(await auth({ username: alice.username, peerId: bob.peerId }), 401, MSG.badDevice);
  });

  it('compares the peerId case-sensitively', async () => {
    const swapped = swapCase(alice.peerId);
    assert.notEqual(swapped, alice.peerId);
    assertJson(await auth({ username: alice.username, peerId: swapped }), 401, MSG.badDevice);
  });

  it('rejects an empty peerId with 401', async () => {
    assertJson(await auth({ username: alice.username, peerId: '' }), 401, MSG.badDevice);
  });

  it('rejects the password in place of the peerId with 401', async () => {
    assertJson(await auth({ username: alice.username, peerId: alice.password }), 401, MSG.badDevice);
  });

  it('rejects an unknown username with the same 401 body as a wrong peerId', async () => {
    const unknown = await auth({ username: newCredentials().username, peerId: alice.peerId });
    const wrong = await auth({ username: alice.username, peerId: bob.peerId });
    assertJson(unknown, 401, MSG.badDevice);
    assert.equal(unknown.text, wrong.text);
  });

  it('a failed attempt changes nothing: the right peerId still works', async () => {
    assertJson(await auth({ username: bob.username, peerId: alice.peerId }), 401, MSG.badDevice);
    assertJson(await auth({ username: bob.username, peerId: bob.peerId }), 200);
  });

  describe('bad input', () => {
    for (const [label, body, expected] of [
      ['an empty object', {}, MSG.missing('username')],
      ['no username', { peerId: 'QmSomething' }, MSG.missing('username')],
      ['no peerId', { username: 'someone' }, MSG.missing('peerId')],
      ['a numeric username', { username: 42, peerId: 'abc' }, MSG.notString('username')],
      ['a numeric peerId', { username: 'someone', peerId: 1234567 }, MSG.notString('peerId')],
      ['an array peerId', { username: 'someone', peerId: ['abc'] }, MSG.notString('peerId')],
    ]) {
      it(`${label} → 400 ${JSON.stringify(expected)}`, async () => {
        assertJson(await auth(body), 400, expected);
      });
    }

    it('a real username without a peerId → 400 and no token', async () => {
      const res = await auth({ username: alice.username });
      assertJson(res, 400, MSG.missing('peerId'));
    });

    it('a wrong content type → 415', async () => {
      const res = await post(server, '/android_auth', {
        body: JSON.stringify({ username: alice.username, peerId: alice.peerId }),
        headers: { 'content-type': 'text/plain' }, localAddress: uniqueIp(),
      });
      assertJson(res, 415, MSG.wrongContentType);
    });

    it('malformed JSON → 400', async () => {
      const res = await post(server, '/android_auth', {
        body: `{"username":"${alice.username}",`, headers: { 'content-type': 'application/json' }, localAddress: uniqueIp(),
      });
      assertJson(res, 400, MSG.malformed);
    });

    it('a JSON array → 400', async () => {
      assertJson(await auth([{ username: alice.username, peerId: alice.peerId }]), 400, MSG.notObject);
    });
  });
});
