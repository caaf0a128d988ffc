// POST /onboarding (auth) {storageRented}: MB, a number or a numeric string.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, post, assertJson, MSG, newUserWithToken, dashboard, deviceToken, onboard, shortest,
} from './harness.mjs';

// a non-default maximum, to see that the configured value is the one enforced
const MAX_MB = 500_000;
const NOT_POSITIVE = { message: 'storageRented must be a positive number' };
const TOO_BIG = { message: `storageRented must be at most ${shortest(MAX_MB)} MB` };

let server;
before(async () => { server = await startServer({ PEERVAULT_MAX_STORAGE_RENTED_MB: MAX_MB }); });
after(async () => { await server?.stop(); });

const onboarded = (username, mb) => ({ message: `${username} has been onboarded! with ${mb} MB of storage` });
const pledgeOf = async (token) => (await dashboard(server, token)).storage_rented;

describe('POST /onboarding', () => {
  for (const [label, value, expected] of [
    ['a number', 2048, 2048],
    ['a numeric string', '2048', 2048],
    ['a fraction', 1.5, 1.5],
    ['a fractional string with a trailing zero', '1.50', 1.5],
    ['a number written with a fraction of zero', '4096.0', 4096],
    ['exactly the configured maximum', MAX_MB, MAX_MB],
  ]) {
    it(`accepts ${label} (${JSON.stringify(value)}), echoes ${shortest(expected)} MB and stores it`, async () => {
      const user = await newUserWithToken(server);
      const res = await post(server, '/onboarding', { token: user.token, json: { storageRented: value } });
      assertJson(res, 200, onboarded(user.username, shortest(expected)));
      assert.equal(await pledgeOf(user.token), expected);
    });
  }

  it('calling it again updates the pledge', async () => {
    const user = await newUserWithToken(server);
    const first = 2048;
    const second = first * 2;
    await onboard(server, user.token, first);
    assert.equal(await pledgeOf(user.token), first);
    const res = await post(server, '/onboarding', { token: user.token, json: { storageRented: second } });
    assertJson(res, 200, onboarded(user.username, shortest(second)));
    assert.equal(await pledgeOf(user.token), second);
    // and down again
    await onboard(server, user.token, first / 2);
    assert.equal(await pledgeOf(user.token), first / 2);
  });

  it('accepts a device token (the Android client onboards with it)', async () => {
    const user = await newUserWithToken(server);
    const token = await deviceToken(server, user);
    const res = await post(server, '/onboarding', { token, json: { storageRented: 10240 } });
    assertJson(res, 200, onboarded(user.username, '10240'));
    assert.equal(await pledgeOf(user.token), 10240);
  });

  describe('bad input leaves the previous pledge in place', () => {
    const PREVIOUS = 2048;
    let user;
    before(async () => {
      user = await newUserWithToken(server);
      await onboard(server, user.token, PREVIOUS);
    });

    const rejects = async (opts, status, expected) => {
      const res = await post(server, '/onboarding', { token: user.token, ...opts });
      assertJson(res, status, expected);
      assert.equal(await pledgeOf(user.token), PREVIOUS);
    };

    it('no storageRented field → 400 "Missing storageRented field in request body"', async () => {
      await rejects({ json: { storage_rented: 4096 } }, 400, MSG.missing('storageRented'));
    });

    it('an empty body → 400 missing field', async () => {
      await rejects({}, 400, MSG.missing('storageRented'));
    });

    for (const [label, value] of [
      ['zero', 0],
      ['the string "0"', '0'],
      ['a negative number', -1024],
      ['a negative string', '-5'],
      ['a non-numeric string', 'abc'],
      ['a number followed by a unit', '2048 MB'],
      ['an empty string', ''],
      ['"NaN"', 'NaN'],
      ['"Infinity"', 'Infinity'],
      ['a boolean', true],
      ['an array', [2048]],
      ['an object', { mb: 2048 }],
    ]) {
      it(`${label} → 400 "storageRented must be a positive number"`, async () => {
        await rejects({ json: { storageRented: value } }, 400, NOT_POSITIVE);
      });
    }

    for (const [label, value] of [
      ['one MB over the configured maximum', MAX_MB + 1],
      ['half a MB over the maximum', MAX_MB + 0.5],
      ['far over the maximum, as a string', String(MAX_MB * 1000)],
      ['an absurd number', 1e300],
    ]) {
      it(`${label} → 400 "storageRented must be at most ${MAX_MB} MB"`, async () => {
        await rejects({ json: { storageRented: value } }, 400, TOO_BIG);
      });
    }

    it('malformed JSON → 400', async () => {
      await rejects({ body: '{"storageRented": 4096', headers: { 'content-type': 'application/json' } }, 400, MSG.malformed);
    });

    it('a wrong content type → 415', async () => {
      await rejects({ body: '{"storageRented": 4096}', headers: { 'content-type': 'text/plain' } }, 415, MSG.wrongContentType);
    });

    it('a JSON array → 400', async () => {
      await rejects({ json: [{ storageRented: 4096 }] }, 400, MSG.notObject);
    });

    it('no token → 401 "Token is missing"', async () => {
      const res = await post(server, '/onboarding', { json: { storageRented: 4096 } });
      assertJson(res, 401, MSG.tokenMissing);
      assert.equal(await pledgeOf(user.token), PREVIOUS);
    });
  });
});
