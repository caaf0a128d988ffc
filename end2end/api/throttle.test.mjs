// Throttling of failed /login and /android_auth attempts, per account and
// per client address. Every test uses fresh source addresses (127.x.y.z) so
// the per-address budgets of different tests never mix.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, post, assertJson, MSG, newUserWithToken, dashboard, newCredentials, uniqueIp,
} from './harness.mjs';

const PER_ACCOUNT = 3;
const PER_IP = 5;

let server;
before(async () => {
  server = await startServer({
    PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT: PER_ACCOUNT,
    PEERVAULT_LOGIN_MAX_FAILURES_PER_IP: PER_IP,
  });
});
after(async () => { await server?.stop(); });

const login = (username, password, ip) => post(server, '/login', { json: { username, password }, localAddress: ip });
const androidAuth = (username, peerId, ip) => post(server, '/android_auth', { json: { username, peerId }, localAddress: ip });

/** A registered user with their peerId. */
async function newDeviceUser() {
  const user = await newUserWithToken(server);
  user.peerId = (await dashboard(server, user.token)).peerId;
  return user;
}

/** n failed logins for `username`, each from a fresh address unless `ip` is given. */
async function failLogins(username, n, ip) {
  for (let i = 0; i < n; i += 1) {
    assertJson(await login(username, `wrong-password-${i}`, ip ?? uniqueIp()), 401, MSG.badLogin);
  }
}

describe('POST /login throttling', () => {
  it(`after ${PER_ACCOUNT} failures for an account, the next login is 429 even with the right password`, async () => {
    const user = await newUserWithToken(server);
    const ip = uniqueIp();
    await failLogins(user.username, PER_ACCOUNT, ip);
    assertJson(await login(user.username, user.password, ip), 429, MSG.tooMany);
  });

  it('the account budget holds whatever address the attempts come from', async () => {
    const user = await newUserWithToken(server);
    await failLogins(user.username, PER_ACCOUNT); // each from its own address
    assertJson(await login(user.username, user.password, uniqueIp()), 429, MSG.tooMany);
  });

  it('failures count per account whatever the letter case of the username', async () => {
    const user = await newUserWithToken(server, { username: `Mixed_${newCredentials().username}` });
    const variants = [user.username.toUpperCase(), user.username.toLowerCase(), user.username];
    for (const [i, name] of variants.entries()) {
      assertJson(await login(name, `wrong-password-${i}`, uniqueIp()), 401, MSG.badLogin);
    }
    assertJson(await login(user.username, user.password, uniqueIp()), 429, MSG.tooMany);
  });

  it(`${PER_ACCOUNT - 1} failures still leave the right password working`, async () => {
    const user = await newUserWithToken(server);
    await failLogins(user.username, PER_ACCOUNT - 1);
    assertJson(await login(user.username, user.password, uniqueIp()), 200);
  });

  it('a successful login clears the account counter', async () => {
    const user = await newUserWithToken(server);
    const ip = uniqueIp();
    await failLogins(user.username, PER_ACCOUNT - 1, ip);
    assertJson(await login(user.username, user.password, ip), 200);
    // without the reset, the next failure would exhaust the budget and block the login below
    await failLogins(user.username, PER_ACCOUNT - 1, uniqueIp());
    assertJson(await login(user.username, user.password, uniqueIp()), 200);
  });

  it('a throttled account does not block other accounts logging in from the same address', async () => {
    const locked = await newUserWithToken(server);
    const other = await newUserWithToken(server);
    const ip = uniqueIp();
    await failLogins(locked.username, PER_ACCOUNT, ip);
    assertJson(await login(locked.username, locked.password, ip), 429, MSG.tooMany);
    assertJson(await login(other.username, other.password, ip), 200);
  });

  it(`after ${PER_IP} failures from one address (different usernames), that address gets 429 while another still logs in`, async () => {
    const user = await newUserWithToken(server);
    const ip = uniqueIp();
    for (let i = 0; i < PER_IP; i += 1) {
      const stranger = newCredentials();
      assertJson(await login(stranger.username, stranger.password, ip), 401, MSG.badLogin);
    }
    assertJson(await login(user.username, user.password, ip), 429, MSG.tooMany);
    assertJson(await login(user.username, user.password, uniqueIp()), 200);
  });

  it('a success does not clear the address counter', async () => {
    const user = await newUserWithToken(server);
    const ip = uniqueIp();
    for (let i = 0; i < PER_IP - 1; i += 1) {
      const stranger = newCredentials();
      assertJson(await login(stranger.username, stranger.password, ip), 401, MSG.badLogin);
    }
    assertJson(await login(user.username, user.password, ip), 200);
    const stranger = newCredentials();
    assertJson(await login(stranger.username, stranger.password, ip), 401, MSG.badLogin);
    // PER_IP failures from this address now, despite the success in between
    assertJson(await login(user.username, user.password, ip), 429, MSG.tooMany);
  });

  it('a 429 grants nothing: no token in the body', async () => {
    const user = await newUserWithToken(server);
    await failLogins(user.username, PER_ACCOUNT);
    const res = await login(user.username, user.password, uniqueIp());
    assertJson(res, 429, MSG.tooMany);
    assert.equal(res.json.token, undefined);
  });
});

describe('POST /android_auth throttling', () => {
  const wrongPeerId = (peerId) => `${peerId.slice(0, -1)}${peerId.endsWith('2') ? '3' : '2'}`;

  it(`after ${PER_ACCOUNT} wrong peerIds for an account, the right peerId gets 429`, async () => {
    const user = await newDeviceUser();
    const ip = uniqueIp();
    for (let i = 0; i < PER_ACCOUNT; i += 1) {
      assertJson(await androidAuth(user.username, wrongPeerId(user.peerId), ip), 401, MSG.badDevice);
    }
    assertJson(await androidAuth(user.username, user.peerId, ip), 429, MSG.tooMany);
    assertJson(await androidAuth(user.username, user.peerId, uniqueIp()), 429, MSG.tooMany);
  });

  it(`${PER_ACCOUNT - 1} wrong peerIds still leave the right one working`, async () => {
    const user = await newDeviceUser();
    for (let i = 0; i < PER_ACCOUNT - 1; i += 1) {
      assertJson(await androidAuth(user.username, wrongPeerId(user.peerId), uniqueIp()), 401, MSG.badDevice);
    }
    assertJson(await androidAuth(user.username, user.peerId, uniqueIp()), 200);
  });

  it(`after ${PER_IP} failures from one address (different usernames), that address gets 429 while another still authenticates`, async () => {
    const user = await newDeviceUser();
    const ip = uniqueIp();
    for (let i = 0; i < PER_IP; i += 1) {
      assertJson(await androidAuth(newCredentials().username, user.peerId, ip), 401, MSG.badDevice);
    }
    assertJson(await androidAuth(user.username, user.peerId, ip), 429, MSG.tooMany);
    assertJson(await androidAuth(user.username, user.peerId, uniqueIp()), 200);
  });
});
