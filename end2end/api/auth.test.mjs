// Authorization on the protected routes: the two header forms, and every
// way a token can be missing, forged, expired or revoked.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, post, assertJson, MSG, newUserWithToken, dashboard, decodeJwt, signJwt, deviceToken,
} from './harness.mjs';

/** The protected routes with a body each would accept. */
const ROUTES = {
  '/dashboard': undefined,
  '/onboarding': { storageRented: 4096 },
  '/active_time': { active_time: '1' },
  '/rateinout': { TotalIn: 10, TotalOut: 20, RateIn: 1, RateOut: 2 },
};

let server;
let user; // { username, email, password, token }
let claims; // the payload of the user's real token
const now = () => Math.floor(Date.now() / 1000);

before(async () => {
  server = await startServer();
  user = await newUserWithToken(server);
  claims = decodeJwt(user.token).payload;
});
after(async () => { await server?.stop(); });

/** A token version that differs from the current one, whatever its JSON type. */
const otherVersion = (ver) => (typeof ver === 'number' ? ver + 1 : `${ver}x`);

/** The account's figures, to show a rejected request changed nothing. */
const figures = async () => dashboard(server, user.token);

describe('Authorization on protected routes', () => {
  it('accepts the raw token: "Authorization: <JWT>" (the Android client form)', async () => {
    const res = await post(server, '/dashboard', { token: user.token });
    assert.equal(assertJson(res, 200).username, user.username);
  });

  it('accepts the Bearer form: "Authorization: Bearer <JWT>"', async () => {
    const res = await post(server, '/dashboard', { token: `Bearer ${user.token}` });
    assert.equal(assertJson(res, 200).username, user.username);
  });

  it('accepts a token we sign ourselves with the server secret and the real claims (control for the forgeries below)', async () => {
    const token = signJwt(server.secret, { ...claims, iat: now(), exp: now() + 600 });
    const res = await post(server, '/dashboard', { token });
    assert.equal(assertJson(res, 200).username, user.username);
  });

  for (const [route, json] of Object.entries(ROUTES)) {
    it(`${route} without an Authorization header → 401 "Token is missing"`, async () => {
      assertJson(await post(server, route, { json }), 401, MSG.tokenMissing);
    });

    it(`${route} with an expired token → 401 "Token is invalid"`, async () => {
      const token = signJwt(server.secret, { ...claims, iat: now() - 7200, exp: now() - 3600 });
      assertJson(await post(server, route, { json, token }), 401, MSG.tokenInvalid);
    });
  }

  for (const [what, header] of Object.entries({ 'an empty header': '', '"Bearer" alone': 'Bearer', '"Bearer " and spaces': 'Bearer   ' })) {
    it(`${what} counts as no token → 401 "Token is missing"`, async () => {
      assertJson(await post(server, '/dashboard', { headers: { Authorization: header } }), 401, MSG.tokenMissing);
    });
  }

  it('a rejected token changes nothing (onboarding, heartbeat and report refused)', async () => {
    const baseline = await figures();
    const expired = signJwt(server.secret, { ...claims, iat: now() - 7200, exp: now() - 3600 });
    for (const [route, json] of Object.entries(ROUTES)) {
      assertJson(await post(server, route, { json, token: expired }), 401, MSG.tokenInvalid);
      assertJson(await post(server, route, { json }), 401, MSG.tokenMissing);
    }
    assert.deepStrictEqual(await figures(), baseline);
  });

  const forgeries = {
    'a garbage string': () => 'garbage',
    'Bearer followed by garbage': () => 'Bearer garbage',
    'three garbage segments': () => 'abc.def.ghi',
    'the token with its signature cut off': () => user.token.split('.').slice(0, 2).join('.'),
    'the token with an empty signature': () => `${user.token.split('.').slice(0, 2).join('.')}.`,
    'a token signed with another secret': () => signJwt(crypto.randomBytes(32).toString('hex'), claims),
    'a token that expired 5 seconds ago (no leeway)': () => signJwt(server.secret, { ...claims, iat: now() - 600, exp: now() - 5 }),
    'an alg "none" token with the real claims': () => signJwt(server.secret, claims, { alg: 'none' }),
    'an alg "none" token carrying the real signature': () => {
      const [, body, sig] = user.token.split('.');
      const head = Buffer.from(JSON.stringify({ alg: 'none', typ: 'JWT' })).toString('base64url');
      return `${head}.${body}.${sig}`;
    },
    'an HS512 token signed with the right secret (wrong algorithm)': () => signJwt(server.secret, claims, { alg: 'HS512' }),
    'an HS384 token signed with the right secret (wrong algorithm)': () => signJwt(server.secret, claims, { alg: 'HS384' }),
    'a token with another token version (revoked)': () => signJwt(server.secret, { ...claims, ver: otherVersion(claims.ver) }),
    'a token without exp': () => {
      const { exp, ...rest } = claims;
      return signJwt(server.secret, rest);
    },
    'a token for an account that does not exist': () => signJwt(server.secret, { ...claims, sub: `no-such-user-${crypto.randomBytes(6).toString('hex')}` }),
    'the real token with its payload swapped for another account (signature no longer matches)': () => {
      const [head, , sig] = user.token.split('.');
      const body = Buffer.from(JSON.stringify({ ...claims, sub: `${claims.sub}0` })).toString('base64url');
      return `${head}.${body}.${sig}`;
    },
  };

  for (const [label, make] of Object.entries(forgeries)) {
    it(`rejects ${label} with 401 "Token is invalid"`, async () => {
      const token = make();
      assertJson(await post(server, '/dashboard', { token }), 401, MSG.tokenInvalid);
      assertJson(await post(server, '/dashboard', { token: `Bearer ${token}` }), 401, MSG.tokenInvalid);
    });
  }

  it('a revoked (other-version) token cannot onboard, and the pledge stays as it was', async () => {
    const baseline = await figures();
    const token = signJwt(server.secret, { ...claims, ver: otherVersion(claims.ver) });
    assertJson(await post(server, '/onboarding', { token, json: { storageRented: baseline.storage_rented + 1024 } }), 401, MSG.tokenInvalid);
    assert.deepStrictEqual(await figures(), baseline);
  });

  it('a device token is accepted on /dashboard, /onboarding, /active_time and /rateinout', async () => {
    const owner = await newUserWithToken(server);
    const token = await deviceToken(server, owner);
    assert.equal(decodeJwt(token).payload.kind, 'device');
    for (const [route, json] of Object.entries(ROUTES)) {
      const res = await post(server, route, { token, json });
      assertJson(res, 200);
    }
  });
});
