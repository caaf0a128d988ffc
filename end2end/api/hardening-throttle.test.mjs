// Hardening of the guessing budgets: the per-account login budget holds
// under hundreds of parallel attempts and whatever name (username or
// email) the attempts use; /verify_otp counts unknown emails per address
// and wrong codes per email; a wrong current password on change_password
// counts against the account; registrations are budgeted per address.
//
// Every test sends from fresh source addresses (uniqueIp) unless it is about
// one address, so the per-address budgets of tests never mix.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, post, assertJson, MSG, registerUser, loginUser, newUserWithToken, newCredentials, dashboard,
  uniqueIp, codeFrom, waitForOutboxMessage, serverFn, webLogin, assertFnError,
} from './harness.mjs';

const NO_SMTP = 'PEERVAULT_SMTP_URL' in process.env ? { PEERVAULT_SMTP_URL: '' } : {};
const ROOMY_REGISTRATION = { PEERVAULT_REGISTER_MAX_PER_IP: 1_000_000 };
const fail = (message) => ({ status: 'failure', message });
const TOO_MANY_RESET = fail(MSG.tooMany.message);
const VERIFY_UNKNOWN = fail('User email or username incorrect or does not exist');
const OTP_FAILED = { status: 'failure', Message: 'OTP verification Failed' };
const SENT = { status: 'success', message: 'Email sent successfully' };
const WRONG_CURRENT = 'The current password is not right';

const newPassword = () => `np-${crypto.randomBytes(9).toString('base64url')}`;
const wrongPeerId = (peerId) => `${peerId.slice(0, -1)}${peerId.endsWith('2') ? '3' : '2'}`;

/** Counts of each distinct (status, body) among `responses`. */
function tally(responses) {
  const counts = {};
  for (const r of responses) {
    const key = `${r.status} ${r.text}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

// ---------------------------------------------------------------------------
// The login budget: PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT=10, a large per-address budget
// ---------------------------------------------------------------------------

describe('the per-account login budget (10 failures) holds under concurrency and across names', () => {
  const BUDGET = 10;
  const PARALLEL = 250;
  let server;
  before(async () => {
    server = await startServer({
      PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT: BUDGET,
      PEERVAULT_LOGIN_MAX_FAILURES_PER_IP: 1_000_000,
      ...ROOMY_REGISTRATION,
    });
  });
  after(async () => { await server?.stop(); });

  // a generous timeout: without the fix, every one of a burst's wrong passwords is hashed, one after the other
  const login = (username, password, ip = uniqueIp()) => post(server, '/login', { json: { username, password }, localAddress: ip, timeout: 180_000 });
  const androidAuth = (username, peerId, ip = uniqueIp()) => post(server, '/android_auth', { json: { username, peerId }, localAddress: ip, timeout: 180_000 });

  /** Fires `n` requests at once from a handful of addresses; returns every response. */
  function burst(n, send) {
    const ips = Array.from({ length: 5 }, () => uniqueIp());
    return Promise.all(Array.from({ length: n }, (_, i) => send(i, ips[i % ips.length])));
  }

  it(`${PARALLEL} parallel wrong-password logins for one account: at most ${BUDGET} are checked (401), the rest 429; then the right password → 429`, async () => {
    const user = await registerUser(server);
    const responses = await burst(PARALLEL, (i, ip) => login(user.username, `wrong-password-${i}`, ip));
    const counts = tally(responses);
    const unauthorized = responses.filter((r) => r.status === 401);
    const throttled = responses.filter((r) => r.status === 429);
    assert.equal(unauthorized.length + throttled.length, PARALLEL, `only 401 and 429 expected: ${JSON.stringify(counts)}`);
    assert.ok(unauthorized.length <= BUDGET, `${unauthorized.length} wrong passwords were checked, budget ${BUDGET}: ${JSON.stringify(counts)}`);
    for (const r of unauthorized) assertJson(r, 401, MSG.badLogin);
    for (const r of throttled) assertJson(r, 429, MSG.tooMany);
    assertJson(await login(user.username, user.password), 429, MSG.tooMany);
  });

  it(`${BUDGET} failures by username, then the right password by email → 429 (the budget is the account's)`, async () => {
    const user = await registerUser(server);
    for (let i = 0; i < BUDGET; i += 1) assertJson(await login(user.username, `wrong-${i}`), 401, MSG.badLogin);
    assertJson(await login(user.email, user.password), 429, MSG.tooMany);
    assertJson(await login(user.email.toUpperCase(), user.password), 429, MSG.tooMany);
  });

  it(`${BUDGET} failures by email, then the right password by username → 429`, async () => {
    const user = await registerUser(server);
    for (let i = 0; i < BUDGET; i += 1) assertJson(await login(user.email, `wrong-${i}`), 401, MSG.badLogin);
    assertJson(await login(user.username, user.password), 429, MSG.tooMany);
  });

  it(`failures split between username and email count together: ${BUDGET / 2} + ${BUDGET / 2} → 429`, async () => {
    const user = await registerUser(server);
    for (let i = 0; i < BUDGET; i += 1) {
      assertJson(await login(i % 2 ? user.email : user.username, `wrong-${i}`), 401, MSG.badLogin);
    }
    assertJson(await login(user.username, user.password), 429, MSG.tooMany);
  });

  it(`a right login before the budget is used up works and resets the account counter`, async () => {
    const user = await registerUser(server);
    for (let i = 0; i < BUDGET - 1; i += 1) assertJson(await login(i % 2 ? user.email : user.username, `wrong-${i}`), 401, MSG.badLogin);
    assertJson(await login(user.email, user.password), 200);
    for (let i = 0; i < BUDGET - 1; i += 1) assertJson(await login(user.username, `again-${i}`), 401, MSG.badLogin);
    assertJson(await login(user.username, user.password), 200);
  });

  it(`${PARALLEL} parallel wrong peerIds on /android_auth: at most ${BUDGET} answered 401, the rest 429; then the right peerId → 429`, async () => {
    const user = await newUserWithToken(server);
    const { peerId } = await dashboard(server, user.token);
    const responses = await burst(PARALLEL, (i, ip) => androidAuth(user.username, wrongPeerId(peerId), ip));
    const counts = tally(responses);
    const unauthorized = responses.filter((r) => r.status === 401);
    const throttled = responses.filter((r) => r.status === 429);
    assert.equal(unauthorized.length + throttled.length, PARALLEL, `only 401 and 429 expected: ${JSON.stringify(counts)}`);
    assert.ok(unauthorized.length <= BUDGET, `${unauthorized.length} wrong peerIds were checked, budget ${BUDGET}: ${JSON.stringify(counts)}`);
    for (const r of unauthorized) assertJson(r, 401, MSG.badDevice);
    for (const r of throttled) assertJson(r, 429, MSG.tooMany);
    assertJson(await androidAuth(user.username, peerId), 429, MSG.tooMany);
  });
});

// ---------------------------------------------------------------------------
// /verify_otp: counted with the login budgets (per email and per address), outbox mode
// ---------------------------------------------------------------------------

describe('/verify_otp guesses (PEERVAULT_LOGIN_MAX_FAILURES_PER_IP=5, PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT=5)', () => {
  const PER_IP = 5;
  const PER_EMAIL = 5;
  let server;
  before(async () => {
    server = await startServer({
      ...NO_SMTP,
      ...ROOMY_REGISTRATION,
      PEERVAULT_LOGIN_MAX_FAILURES_PER_IP: PER_IP,
      PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT: PER_EMAIL,
    });
  });
  after(async () => { await server?.stop(); });

  const verify = (json, ip = uniqueIp()) => post(server, '/verify_otp', { json, localAddress: ip });
  /** Requests a code for `email` (a fresh account: its first mail) and reads it from the outbox. */
  async function requestCode(email) {
    assertJson(await post(server, '/send_reset_email', { json: { email }, localAddress: uniqueIp() }), 200, SENT);
    return codeFrom(await waitForOutboxMessage(server.dataDir, (m) => m.to.includes(email)));
  }
  const logsIn = async (user, password) => assertJson(await post(server, '/login', {
    json: { username: user.username, password }, localAddress: uniqueIp(),
  }), 200);

  it(`${PER_IP} unknown emails from one address → 404 each, then 429 (even for an email that exists); another address is answered normally`, async () => {
    const ip = uniqueIp();
    for (let i = 0; i < PER_IP; i += 1) {
      assertJson(await verify({ email: newCredentials().email, otp: '123456', password: newPassword() }, ip), 404, VERIFY_UNKNOWN);
    }
    assertJson(await verify({ email: newCredentials().email, otp: '123456', password: newPassword() }, ip), 429, TOO_MANY_RESET);
    const user = await registerUser(server);
    const code = await requestCode(user.email);
    const pw = newPassword();
    assertJson(await verify({ email: user.email, otp: code, password: pw }, ip), 429, TOO_MANY_RESET);
    await logsIn(user, user.password); // not reset
    assertJson(await verify({ email: newCredentials().email, otp: '123456', password: newPassword() }), 404, VERIFY_UNKNOWN);
    assertJson(await verify({ email: user.email, otp: code, password: pw }), 200, { status: 'Passed', Message: 'OTP verification successfully' });
    await logsIn(user, pw);
  });

  it(`${PER_EMAIL} wrong codes for one email (each from its own address) → then 429 for that email, password unchanged`, async () => {
    const user = await registerUser(server);
    const code = await requestCode(user.email);
    const pw = newPassword();
    for (let i = 1; i <= PER_EMAIL; i += 1) {
      const wrong = String((Number(code) + i) % 1_000_000).padStart(6, '0');
      assertJson(await verify({ email: user.email, otp: wrong, password: pw }), 400, OTP_FAILED);
    }
    // (the code is burned by now as well: five wrong guesses, existing behaviour)
    assertJson(await verify({ email: user.email, otp: code, password: pw }), 429, TOO_MANY_RESET);
    assertJson(await verify({ email: user.email.toUpperCase(), otp: code, password: pw }), 429, TOO_MANY_RESET);
    await logsIn(user, user.password);
  });
});

// ---------------------------------------------------------------------------
// change_password: PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT=3
// ---------------------------------------------------------------------------

describe('change_password with a wrong current password (PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT=3)', () => {
  const BUDGET = 3;
  let server;
  before(async () => {
    server = await startServer({ PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT: BUDGET, ...ROOMY_REGISTRATION });
  });
  after(async () => { await server?.stop(); });

  it(`after ${BUDGET} wrong current passwords, even the right one → 429, and the password is unchanged`, async () => {
    const user = await newUserWithToken(server);
    const cookie = await webLogin(server, user, { localAddress: uniqueIp() });
    const pw = newPassword();
    for (let i = 0; i < BUDGET; i += 1) {
      const res = await serverFn(server, 'change_password', { current_password: `not-it-${i}`, new_password: pw }, { cookie, localAddress: uniqueIp() });
      assertFnError(res, 400, WRONG_CURRENT);
    }
    const res = await serverFn(server, 'change_password', { current_password: user.password, new_password: pw }, { cookie, localAddress: uniqueIp() });
    assertFnError(res, 429, MSG.tooMany.message);
    // unchanged: a password change would have revoked the older token
    assert.equal((await dashboard(server, user.token)).username, user.username);
    await loginUser(server, user, { localAddress: uniqueIp() });
    assertJson(await post(server, '/login', { json: { username: user.username, password: pw }, localAddress: uniqueIp() }), 401, MSG.badLogin);
  });
});

// ---------------------------------------------------------------------------
// Registration: PEERVAULT_REGISTER_MAX_PER_IP=5
// ---------------------------------------------------------------------------

describe('registrations per address (PEERVAULT_REGISTER_MAX_PER_IP=5)', () => {
  const BUDGET = 5;
  let server;
  before(async () => { server = await startServer({ PEERVAULT_REGISTER_MAX_PER_IP: BUDGET }); });
  after(async () => { await server?.stop(); });

  const register = (creds, ip) => post(server, '/register', { json: creds, localAddress: ip });

  it(`${BUDGET} registrations from one address succeed, the next → 429 and creates nothing; another address can register it`, async () => {
    const ip = uniqueIp();
    for (let i = 0; i < BUDGET; i += 1) {
      const creds = newCredentials();
      assertJson(await register(creds, ip), 200, { message: 'User registered successfully' });
      await loginUser(server, creds, { localAddress: uniqueIp() });
    }
    const refused = newCredentials();
    assertJson(await register(refused, ip), 429, MSG.tooMany);
    assertJson(await post(server, '/login', { json: { username: refused.username, password: refused.password }, localAddress: uniqueIp() }), 401, MSG.badLogin);
    assertJson(await register(refused, uniqueIp()), 200, { message: 'User registered successfully' });
    await loginUser(server, refused, { localAddress: uniqueIp() });
  });
});
