// Hardening of sessions and accounts: a deleted account's token, cookie and
// download links never open the account registered after it; logging out
// ends the session on the server; a password change revokes download links;
// server functions refuse cross-site posts; security events are logged with
// the client address and without secrets.
//
// Server functions are posted to /api/<name> (harness.mjs → serverFn) with
// the server's own Origin unless a test is about a cross-site post.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  startServer, request, post, assertJson, MSG, registerUser, loginUser, newUserWithToken, dashboard,
  deviceToken, uniqueIp, uploadFile, downloadLink, onboard, sleep, codeFrom, waitForOutboxMessage,
  serverFn, webLogin, cookieToken, sessionCookieOf, assertFnError,
} from './harness.mjs';

const LINK_INVALID = { message: 'Download link is invalid or has expired' };
const CROSS_SITE = 'Cross-site request refused';
const EVIL = 'https://evil.example';

let server;
before(async () => {
  server = await startServer({
    // many accounts are registered from 127.0.0.1 here: keep the registration budget out of the way
    PEERVAULT_REGISTER_MAX_PER_IP: 1_000_000,
    // no SMTP server: reset mails go to <dataDir>/outbox (unset unless the environment sets it)
    ...('PEERVAULT_SMTP_URL' in process.env ? { PEERVAULT_SMTP_URL: '' } : {}),
  });
});
after(async () => { await server?.stop(); });

const linkPath = (url) => { const u = new URL(url); return u.pathname + u.search; };
const fetchLink = (url) => request(server, 'GET', linkPath(url));
const newPassword = () => `np-${crypto.randomBytes(9).toString('base64url')}`;

/** Asserts that /api/account_info with `cookie` shows no account: null, or 401. */
async function assertNoAccountInfo(cookie, ctx = '') {
  const res = await serverFn(server, 'account_info', {}, { cookie });
  assert.ok(res.status === 200 || res.status === 401, `account_info ${ctx}: ${res.status} ${res.text.slice(0, 300)}`);
  if (res.status === 200) assert.equal(res.json, null, `account_info ${ctx} returned an account: ${res.text.slice(0, 300)}`);
  return res;
}

/** The stderr line that names `event` and the client address `ip`, waiting briefly for it. */
async function logLine(event, ip) {
  const addr = new RegExp(`(^|[^0-9.])${ip.replaceAll('.', '\\.')}([^0-9]|$)`);
  const deadline = Date.now() + 5_000;
  for (;;) {
    const line = server.stderr().split('\n').find((l) => l.includes(event) && addr.test(l));
    if (line) return line;
    if (Date.now() > deadline) {
      const related = server.stderr().split('\n').filter((l) => l.includes(event));
      assert.fail(`no log line names "${event}" with the client address ${ip}; lines naming the event: ${JSON.stringify(related)}`);
    }
    await sleep(50); // real time: the log line is written by another process
  }
}

/** A 6-digit code appears in the log as a number of its own (not inside a timestamp or another number). */
const codeIn = (text, code) => new RegExp(`(?<![\\w.:-])${code}(?!\\w)`).test(text);

// ---------------------------------------------------------------------------

describe('a deleted account never lends its credentials to the next account', () => {
  it('after delete + register (three rounds) the old token is invalid, the old cookie shows nothing and the old link serves nothing', async () => {
    for (let round = 1; round <= 3; round += 1) {
      const ctx = `(round ${round})`;
      const m = await registerUser(server);
      const mToken = await loginUser(server, m);
      const mCookie = await webLogin(server, m);
      const bytes = crypto.randomBytes(3000);
      const { cid } = await uploadFile(server, mToken, bytes, { filename: 'mine.bin' });
      const mLink = await downloadLink(server, mToken, cid);
      const ok = await fetchLink(mLink);
      assert.equal(ok.status, 200, `the link works before the deletion ${ctx}`);

      const del = await serverFn(server, 'delete_account', { confirm: m.username }, { cookie: mCookie });
      assert.equal(del.status, 200, `delete_account ${ctx}: ${del.status} ${del.text.slice(0, 300)}`);
      assertJson(await post(server, '/login', { json: { username: m.username, password: m.password }, localAddress: uniqueIp() }), 401, MSG.badLogin);

      const v = await newUserWithToken(server);
      const vFigures = await dashboard(server, v.token);
      // V stores the very bytes M's link named
      const vWeb3 = await uploadFile(server, v.token, bytes, { filename: 'theirs.bin' });
      assert.equal(vWeb3.cid, cid);

      assertJson(await post(server, '/dashboard', { token: mToken }), 401, MSG.tokenInvalid);
      assertJson(await post(server, '/get_file_list', { token: mToken }), 401, MSG.tokenInvalid);

      const info = await assertNoAccountInfo(mCookie, ctx);
      assert.ok(!info.text.includes(v.username) && !info.text.includes(vFigures.peerId), `account_info shows the new account ${ctx}`);
      for (const page of ['/account', '/dashboard']) {
        const res = await request(server, 'GET', page, { headers: { cookie: mCookie } });
        assert.ok(res.status < 500, `GET ${page} ${ctx}: ${res.status}`);
        assert.ok(!res.text.includes(vFigures.peerId), `GET ${page} with the deleted account's cookie shows the new account's peerId ${ctx}`);
        assert.ok(!res.text.includes(v.username), `GET ${page} with the deleted account's cookie shows the new account's username ${ctx}`);
      }

      const got = await fetchLink(mLink);
      assert.ok(got.status === 403 || got.status === 404, `the deleted account's link ${ctx}: ${got.status} ${got.text.slice(0, 200)}`);
      assertJson(got, got.status);
      assert.ok(!got.raw.equals(bytes), `the deleted account's link served the new account's bytes ${ctx}`);
    }
  });
});

describe('sessions end', () => {
  it('log_out revokes the session token on the server; another login and a device token stay valid', async () => {
    const user = await newUserWithToken(server); // user.token: an independent JSON login
    const device = await deviceToken(server, user);
    const cookie = await webLogin(server, user);
    const session = cookieToken(cookie);
    await dashboard(server, session); // the cookie's token works as a bearer token before
    const info = await serverFn(server, 'account_info', {}, { cookie });
    assert.equal(info.status, 200, info.text);
    assert.equal(info.json?.username, user.username, info.text);

    const out = await serverFn(server, 'log_out', {}, { cookie });
    assert.equal(out.status, 200, `log_out: ${out.status} ${out.text.slice(0, 300)}`);

    assertJson(await post(server, '/dashboard', { token: session }), 401, MSG.tokenInvalid);
    assertJson(await post(server, '/dashboard', { token: `Bearer ${session}` }), 401, MSG.tokenInvalid);
    await assertNoAccountInfo(cookie);
    assert.equal((await dashboard(server, user.token)).username, user.username);
    assert.equal((await dashboard(server, device)).username, user.username);
  });

  it('a password change revokes download links handed out before it; a link made after it works', async () => {
    const user = await newUserWithToken(server);
    const bytes = crypto.randomBytes(5000);
    const { cid } = await uploadFile(server, user.token, bytes);
    const oldLink = await downloadLink(server, user.token, cid);
    assert.equal((await fetchLink(oldLink)).status, 200);

    const cookie = await webLogin(server, user);
    const pw = newPassword();
    const res = await serverFn(server, 'change_password', { current_password: user.password, new_password: pw }, { cookie });
    assert.equal(res.status, 200, `change_password: ${res.status} ${res.text.slice(0, 300)}`);

    assertJson(await fetchLink(oldLink), 403, LINK_INVALID);
    const token = await loginUser(server, { ...user, password: pw });
    const newLink = await downloadLink(server, token, cid);
    const got = await fetchLink(newLink);
    assert.equal(got.status, 200, got.text.slice(0, 200));
    assert.ok(got.raw.equals(bytes), 'the new link serves the file');
  });
});

describe('cross-site posts to server functions are refused', () => {
  /** A user pledging 2048 MB, with a web session. */
  async function pledger() {
    const user = await newUserWithToken(server);
    await onboard(server, user.token, 2048);
    user.cookie = await webLogin(server, user);
    return user;
  }
  const pledgeOf = async (user) => (await dashboard(server, user.token)).storage_rented;
  const pledge = (user, opts) => serverFn(server, 'pledge_storage', { amount: 7, unit: 'GB' }, { cookie: user.cookie, ...opts });

  it(`pledge_storage with Origin: ${EVIL} → 403 "${CROSS_SITE}", pledge unchanged`, async () => {
    const user = await pledger();
    assertFnError(await pledge(user, { origin: EVIL, headers: { 'sec-fetch-site': 'cross-site' } }), 403, CROSS_SITE);
    assertFnError(await pledge(user, { origin: EVIL }), 403, CROSS_SITE);
    assert.equal(await pledgeOf(user), 2048);
    const current = await serverFn(server, 'current_pledge', {}, { cookie: user.cookie });
    assert.equal(current.status, 200, current.text);
    assert.equal(current.json, 2048);
  });

  it('pledge_storage with no Origin but Sec-Fetch-Site: cross-site → 403, pledge unchanged', async () => {
    const user = await pledger();
    assertFnError(await pledge(user, { origin: null, headers: { 'sec-fetch-site': 'cross-site' } }), 403, CROSS_SITE);
    assert.equal(await pledgeOf(user), 2048);
  });

  it('pledge_storage with Origin: null → 403, pledge unchanged', async () => {
    const user = await pledger();
    assertFnError(await pledge(user, { origin: 'null' }), 403, CROSS_SITE);
    assert.equal(await pledgeOf(user), 2048);
  });

  it('pledge_storage from the server\'s own origin → 200 and the pledge is 7 GB', async () => {
    const user = await pledger();
    const res = await pledge(user, { headers: { 'sec-fetch-site': 'same-origin' } });
    assert.equal(res.status, 200, res.text);
    assert.equal(await pledgeOf(user), 7 * 1024);
  });

  it('log_in from another site → 403, no session cookie', async () => {
    const user = await registerUser(server);
    const res = await serverFn(server, 'log_in', { username: user.username, password: user.password }, {
      origin: EVIL, headers: { 'sec-fetch-site': 'cross-site' }, localAddress: uniqueIp(),
    });
    assertFnError(res, 403, CROSS_SITE);
    assert.equal(sessionCookieOf(res), null, `a session cookie was set: ${JSON.stringify(res.headers['set-cookie'])}`);
  });

  it('delete_account from another site → 403, the account still exists', async () => {
    const user = await newUserWithToken(server);
    const cookie = await webLogin(server, user);
    const res = await serverFn(server, 'delete_account', { confirm: user.username }, {
      cookie, origin: EVIL, headers: { 'sec-fetch-site': 'cross-site' },
    });
    assertFnError(res, 403, CROSS_SITE);
    assert.equal((await dashboard(server, user.token)).username, user.username);
    await loginUser(server, user, { localAddress: uniqueIp() });
  });
});

describe('security events are logged with the client address and without secrets', () => {
  it('a password change logs "password changed" with the client address, not the passwords', async () => {
    const user = await newUserWithToken(server);
    const cookie = await webLogin(server, user);
    const ip = uniqueIp();
    const pw = newPassword();
    const res = await serverFn(server, 'change_password', { current_password: user.password, new_password: pw }, { cookie, localAddress: ip });
    assert.equal(res.status, 200, `change_password: ${res.status} ${res.text.slice(0, 300)}`);
    await logLine('password changed', ip);
    const log = server.stderr();
    assert.ok(!log.includes(user.password), 'the log holds the old password');
    assert.ok(!log.includes(pw), 'the log holds the new password');
  });

  it('a password reset (/verify_otp) logs "password reset" with the client address, not the code or the password', async () => {
    const user = await registerUser(server);
    assertJson(await post(server, '/send_reset_email', { json: { email: user.email }, localAddress: uniqueIp() }), 200,
      { status: 'success', message: 'Email sent successfully' });
    const mail = await waitForOutboxMessage(server.dataDir, (m) => m.to.includes(user.email));
    const code = codeFrom(mail);
    const ip = uniqueIp();
    const pw = newPassword();
    assertJson(await post(server, '/verify_otp', { json: { email: user.email, otp: code, password: pw }, localAddress: ip }), 200,
      { status: 'Passed', Message: 'OTP verification successfully' });
    await logLine('password reset', ip);
    const log = server.stderr();
    assert.ok(!codeIn(log, code), `the log holds the reset code ${code}`);
    assert.ok(!log.includes(pw), 'the log holds the new password');
    assert.ok(!log.includes(user.password), 'the log holds the old password');
  });

  it('an account deletion logs "account deleted" with the client address, not the password', async () => {
    const user = await registerUser(server);
    const cookie = await webLogin(server, user);
    const ip = uniqueIp();
    const res = await serverFn(server, 'delete_account', { confirm: user.username }, { cookie, localAddress: ip });
    assert.equal(res.status, 200, `delete_account: ${res.status} ${res.text.slice(0, 300)}`);
    await logLine('account deleted', ip);
    assert.ok(!server.stderr().includes(user.password), 'the log holds the password');
  });
});
