// POST /dashboard (auth)
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, post, assertJson, MSG, newUserWithToken, dashboard, deviceToken, onboard, BASE58,
} from './harness.mjs';

const KEYS = ['username', 'peerId', 'storage_rented', 'coins_earned', 'bandwidth_used', 'data_uploaded', 'data_downloaded', 'space_used'];
// the contract: a peerId carries at least 100 random bits, in base58
const MIN_PEER_ID_CHARS = Math.ceil(100 / Math.log2(58));

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

describe('POST /dashboard', () => {
  it('shows a fresh account with exactly the 8 contract keys, all figures 0', async () => {
    const user = await newUserWithToken(server);
    const res = await post(server, '/dashboard', { token: user.token });
    const body = assertJson(res, 200);
    assert.deepStrictEqual(Object.keys(body).sort(), [...KEYS].sort());
    assert.deepStrictEqual(body, {
      username: user.username,
      peerId: body.peerId,
      storage_rented: 0,
      coins_earned: 0,
      bandwidth_used: 0,
      data_uploaded: 0,
      data_downloaded: 0,
      space_used: 0,
    });
  });

  it(`gives every account a base58 peerId of at least ${MIN_PEER_ID_CHARS} characters (>= 100 bits)`, async () => {
    const { token } = await newUserWithToken(server);
    const { peerId } = await dashboard(server, token);
    assert.equal(typeof peerId, 'string');
    assert.match(peerId, BASE58);
    assert.ok(peerId.length >= MIN_PEER_ID_CHARS, `peerId ${peerId} is ${peerId.length} characters`);
  });

  it('gives different accounts different peerIds', async () => {
    const ids = new Set();
    for (let i = 0; i < 5; i += 1) {
      const { token } = await newUserWithToken(server);
      ids.add((await dashboard(server, token)).peerId);
    }
    assert.equal(ids.size, 5);
  });

  it('keeps the same peerId across logins', async () => {
    const user = await newUserWithToken(server);
    const first = (await dashboard(server, user.token)).peerId;
    const again = await newLogin(user);
    assert.equal((await dashboard(server, again)).peerId, first);
  });

  it('shows each user their own figures only', async () => {
    const alice = await newUserWithToken(server);
    const bob = await newUserWithToken(server);
    await onboard(server, alice.token, 3072);
    const a = await dashboard(server, alice.token);
    const b = await dashboard(server, bob.token);
    assert.equal(a.username, alice.username);
    assert.equal(a.storage_rented, 3072);
    assert.equal(b.username, bob.username);
    assert.equal(b.storage_rented, 0);
    assert.notEqual(a.peerId, b.peerId);
  });

  it('prints a whole storage_rented as an integer (2048, not 2048.0)', async () => {
    const user = await newUserWithToken(server);
    await onboard(server, user.token, '2048');
    const res = await post(server, '/dashboard', { token: user.token });
    assertJson(res, 200);
    assert.match(res.text, /"storage_rented"\s*:\s*2048\s*[,}]/);
  });

  it('answers the same with the Bearer form and with a device token', async () => {
    const user = await newUserWithToken(server);
    const raw = await dashboard(server, user.token);
    const bearer = assertJson(await post(server, '/dashboard', { token: `Bearer ${user.token}` }), 200);
    const device = await dashboard(server, await deviceToken(server, user));
    assert.deepStrictEqual(bearer, raw);
    assert.deepStrictEqual(device, raw);
  });

  it('accepts an explicit empty JSON object as the body', async () => {
    const user = await newUserWithToken(server);
    const res = await post(server, '/dashboard', { token: user.token, json: {} });
    assert.equal(assertJson(res, 200).username, user.username);
  });

  it('without a token → 401 "Token is missing"', async () => {
    assertJson(await post(server, '/dashboard', {}), 401, MSG.tokenMissing);
  });

  it('with a garbage token → 401 "Token is invalid"', async () => {
    assertJson(await post(server, '/dashboard', { token: 'Bearer not.a.jwt' }), 401, MSG.tokenInvalid);
  });
});

async function newLogin(user) {
  const res = await post(server, '/login', { json: { username: user.username, password: user.password } });
  return assertJson(res, 200).token;
}
