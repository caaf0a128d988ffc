// Password reset: POST /send_reset_email {email} and POST /verify_otp
// {email, otp, password}, with mails delivered to a real SMTP server
// (aiosmtpd from target/smtp-venv, see harness.mjs → startSmtp) or, without
// an SMTP URL, written to <data dir>/outbox/*.eml.
//
// Every request goes out from its own loopback address (uniqueIp) unless a
// test is about the per-address budget, so the budgets of tests never mix.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import {
  startServer, startSmtp, post, assertJson, MSG, registerUser, loginUser, dashboard, deviceToken,
  newCredentials, uniqueIp, freePort, sleep, paddedJson, parseAddress, htmlText, sixDigitCodes, codeFrom,
  outboxMessages, waitForOutboxMessage, advanceClock, TEST_CLOCK,
} from './harness.mjs';

// ---------------------------------------------------------------------------
// Expected bodies (CONTRACT.md and the reset spec)
// ---------------------------------------------------------------------------

const fail = (message) => ({ status: 'failure', message });
const SENT = { status: 'success', message: 'Email sent successfully' };
const SEND_UNKNOWN = fail('Email not found, Please register first');
const CANNOT_SEND = fail('Unable to send otp at this time, Please try again later');
const PASSED = { status: 'Passed', Message: 'OTP verification successfully' };
const OTP_FAILED = { status: 'failure', Message: 'OTP verification Failed' };
const VERIFY_NO_EMAIL = fail('Email not found');
const VERIFY_NO_OTP = fail('otp not found');
const VERIFY_NO_PASSWORD = fail('password not found');
const VERIFY_UNKNOWN = fail('User email or username incorrect or does not exist');
const SHORT_PASSWORD = fail('Password must be at least 8 characters');
const LONG_PASSWORD = fail('Password must be at most 1024 characters');
const TOO_MANY = fail(MSG.tooMany.message);
/** A generic body-rule error of the two reset routes: the usual message plus "status":"failure". */
const withStatus = (body) => ({ status: 'failure', ...body });

const DEFAULT_FROM = { name: 'peervault', address: 'no-reply@peervault.local' };
const DEFAULT_SUBJECT = 'Your peervault password reset code';
const DEFAULT_MAX_JSON_BODY = 64 * 1024;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

const sendReset = (server, email, ip = uniqueIp()) => post(server, '/send_reset_email', { json: { email }, localAddress: ip });
const sendResetRaw = (server, opts) => post(server, '/send_reset_email', { localAddress: uniqueIp(), ...opts });
const verifyOtp = (server, json, ip = uniqueIp()) => post(server, '/verify_otp', { json, localAddress: ip });
const verifyOtpRaw = (server, opts) => post(server, '/verify_otp', { localAddress: uniqueIp(), ...opts });

const newPassword = () => `np-${crypto.randomBytes(9).toString('base64url')}`;
/** A 6-digit code that is not `code`. */
const otherCode = (code) => String((Number(code) + 1) % 1_000_000).padStart(6, '0');

/** Mails (of a mailbox: startSmtp() or outboxBox()) addressed to `email`. */
const isTo = (email) => (m) => parseAddress(m.to).address.toLowerCase() === email.toLowerCase();
const mailsTo = (box, email) => box.messages().filter(isTo(email));

/** The outbox of a server as a mailbox with the same interface as startSmtp(). */
const outboxBox = (server) => ({
  messages: () => outboxMessages(server.dataDir),
  waitForMessage: (predicate, timeoutMs) => waitForOutboxMessage(server.dataDir, predicate, timeoutMs),
});

/**
 * POST /send_reset_email for `email` (asserting 200 and the exact body) and
 * wait for the new mail to it; returns { code, mail }.
 */
async function requestCode(server, box, email, ip = uniqueIp()) {
  const seen = new Set(mailsTo(box, email).map((m) => m.file));
  assertJson(await sendReset(server, email, ip), 200, SENT);
  const mail = await box.waitForMessage((m) => isTo(email)(m) && !seen.has(m.file));
  return { code: codeFrom(mail), mail };
}

/** Assert that no (further) mail to `email` shows up within a short while. */
async function assertNoMailTo(box, email, expectedCount = 0) {
  // Real time is the subject: a mail that should not exist is given a
  // moment to arrive (SMTP delivery is another process) before the check.
  await sleep(300);
  assert.equal(mailsTo(box, email).length, expectedCount, `mails to ${email}: ${JSON.stringify(mailsTo(box, email).map((m) => m.subject))}`);
}

const login = (server, username, password) => post(server, '/login', { json: { username, password }, localAddress: uniqueIp() });
async function assertLogsIn(server, user, password) {
  const res = await login(server, user.username, password);
  const body = assertJson(res, 200);
  assert.equal(typeof body.token, 'string');
  return body.token;
}
async function assertLoginFails(server, user, password) {
  assertJson(await login(server, user.username, password), 401, MSG.badLogin);
}

/** A reset mail's format: addresses, subject, both parts with the code and the validity sentence. */
function assertResetMail(mail, { to, from = DEFAULT_FROM, subject = DEFAULT_SUBJECT, validity }) {
  const ctx = `mail:\n${mail.raw.slice(0, 3000)}`;
  assert.deepStrictEqual(parseAddress(mail.to), { name: '', address: to }, `To ${ctx}`);
  assert.deepStrictEqual(parseAddress(mail.from), from, `From ${ctx}`);
  assert.equal(mail.subject, subject, `Subject ${ctx}`);
  assert.equal(mail.contentType, 'multipart/alternative', `top-level Content-Type ${ctx}`);
  assert.deepStrictEqual(mail.parts.map((p) => p.type).sort(), ['text/html', 'text/plain'], `parts ${ctx}`);
  const code = codeFrom(mail);
  assert.match(code, /^\d{6}$/);
  assert.ok(mail.text.includes(code), `the text part holds the code ${ctx}`);
  const html = htmlText(mail.html);
  assert.deepStrictEqual(sixDigitCodes(html), [code], `the HTML part holds the same code and no other: ${html}`);
  assert.ok(mail.text.replace(/\s+/g, ' ').includes(validity), `the text part says "${validity}": ${mail.text}`);
  assert.ok(html.includes(validity), `the HTML part says "${validity}": ${html}`);
  return code;
}

// ---------------------------------------------------------------------------
// The main server: a real SMTP server, default settings
// ---------------------------------------------------------------------------

let smtp;
let server;
before(async () => {
  smtp = await startSmtp();
  server = await startServer({ PEERVAULT_SMTP_URL: smtp.url });
});
after(async () => {
  await server?.stop();
  await smtp?.stop();
});

describe('POST /send_reset_email', () => {
  it('answers 200 and mails a 6-digit code to the account\'s address, in a text and an HTML part, valid 10 minutes', async () => {
    const user = await registerUser(server);
    const res = await sendReset(server, user.email);
    assertJson(res, 200, SENT);
    const mail = await smtp.waitForMessage(isTo(user.email));
    const code = assertResetMail(mail, { to: user.email, validity: 'The code is valid for 10 minutes.' });
    // the SMTP envelope goes to that address only (aiosmtpd records it as X-RcptTo)
    assert.equal(mail.header('x-rcptto'), user.email);
    await assertNoMailTo(smtp, user.email, 1);
    // and it is the code the server expects
    const pw = newPassword();
    assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw }), 200, PASSED);
    await assertLogsIn(server, user, pw);
  });

  it('finds the account whatever the letter case of the email and mails its stored address', async () => {
    const user = await registerUser(server);
    const seen = mailsTo(smtp, user.email).length;
    assertJson(await sendReset(server, user.email.toUpperCase()), 200, SENT);
    const mail = await smtp.waitForMessage(isTo(user.email));
    assert.equal(mailsTo(smtp, user.email).length, seen + 1);
    assertResetMail(mail, { to: user.email, validity: 'The code is valid for 10 minutes.' });
    const pw = newPassword();
    assertJson(await verifyOtp(server, { email: user.email, otp: codeFrom(mail), password: pw }), 200, PASSED);
    await assertLogsIn(server, user, pw);
  });

  it('answers an unknown email with 404 "Email not found, Please register first" and mails nothing', async () => {
    const stranger = newCredentials();
    assertJson(await sendReset(server, stranger.email), 404, SEND_UNKNOWN);
    await assertNoMailTo(smtp, stranger.email);
  });

  it('sends a fresh code on each request: the previous code fails, the new one works', async () => {
    const user = await registerUser(server);
    const first = await requestCode(server, smtp, user.email);
    const second = await requestCode(server, smtp, user.email);
    assert.equal(mailsTo(smtp, user.email).length, 2);
    assert.notEqual(first.code, second.code, 'two requests gave the same code');
    const pw = newPassword();
    assertJson(await verifyOtp(server, { email: user.email, otp: first.code, password: pw }), 400, OTP_FAILED);
    await assertLogsIn(server, user, user.password);
    await assertLoginFails(server, user, pw);
    assertJson(await verifyOtp(server, { email: user.email, otp: second.code, password: pw }), 200, PASSED);
    await assertLogsIn(server, user, pw);
    await assertLoginFails(server, user, user.password);
  });

  it('a request for one account leaves the pending code of another account alone', async () => {
    const a = await registerUser(server);
    const b = await registerUser(server);
    const codeA = (await requestCode(server, smtp, a.email)).code;
    await requestCode(server, smtp, b.email);
    const pw = newPassword();
    assertJson(await verifyOtp(server, { email: a.email, otp: codeA, password: pw }), 200, PASSED);
    await assertLogsIn(server, a, pw);
  });

  describe('bad input (400, "status":"failure")', () => {
    for (const [label, body, expected] of [
      ['an empty object', {}, fail('Missing email field in request body')],
      ['no email but other fields', { mail: 'someone@example.com' }, fail('Missing email field in request body')],
      ['a numeric email', { email: 12345 }, fail('email must be a string')],
      ['a boolean email', { email: true }, fail('email must be a string')],
      ['an object email', { email: { address: 'someone@example.com' } }, fail('email must be a string')],
      ['an array email', { email: ['someone@example.com'] }, fail('email must be a string')],
    ]) {
      it(`${label} → 400 ${JSON.stringify(expected)}`, async () => {
        assertJson(await sendResetRaw(server, { json: body }), 400, expected);
      });
    }

    it('an empty body → 400 "Missing email field in request body"', async () => {
      assertJson(await sendResetRaw(server, {}), 400, fail('Missing email field in request body'));
    });

    it('a wrong Content-Type → 415 with "status":"failure", and no mail', async () => {
      const user = await registerUser(server);
      const res = await sendResetRaw(server, { body: JSON.stringify({ email: user.email }), headers: { 'content-type': 'text/plain' } });
      assertJson(res, 415, withStatus(MSG.wrongContentType));
      await assertNoMailTo(smtp, user.email);
    });

    it('malformed JSON → 400 with "status":"failure", and no mail', async () => {
      const user = await registerUser(server);
      const res = await sendResetRaw(server, { body: `{"email":"${user.email}"`, headers: { 'content-type': 'application/json' } });
      assertJson(res, 400, withStatus(MSG.malformed));
      await assertNoMailTo(smtp, user.email);
    });

    it('a JSON array → 400 "Request body must be a JSON object" with "status":"failure"', async () => {
      const user = await registerUser(server);
      assertJson(await sendResetRaw(server, { json: [user.email] }), 400, withStatus(MSG.notObject));
      await assertNoMailTo(smtp, user.email);
    });

    it('invalid UTF-8 → 400 with "status":"failure"', async () => {
      const body = Buffer.concat([Buffer.from('{"email":"a'), Buffer.from([0x80, 0xff]), Buffer.from('@example.com"}')]);
      const res = await sendResetRaw(server, { body, headers: { 'content-type': 'application/json' } });
      assertJson(res, 400, withStatus(MSG.badUtf8));
    });

    it('a body over the 64 KiB default → 413 with "status":"failure", and no mail', async () => {
      const user = await registerUser(server);
      const res = await sendResetRaw(server, {
        body: paddedJson({ email: user.email }, DEFAULT_MAX_JSON_BODY * 2), headers: { 'content-type': 'application/json' },
      });
      assertJson(res, 413, withStatus(MSG.tooLarge));
      await assertNoMailTo(smtp, user.email);
    });
  });
});

describe('POST /verify_otp', () => {
  it('the right code answers 200, sets the new password and the old one stops working', async () => {
    const user = await registerUser(server);
    const { code } = await requestCode(server, smtp, user.email);
    const pw = newPassword();
    const res = await verifyOtp(server, { email: user.email, otp: code, password: pw });
    assertJson(res, 200, PASSED);
    await assertLogsIn(server, user, pw);
    await loginUser(server, { ...user, password: pw }, { as: 'email', localAddress: uniqueIp() });
    await assertLoginFails(server, user, user.password);
  });

  it('revokes every token issued before: the user token and the device token get 401 "Token is invalid"', async () => {
    const user = await registerUser(server);
    const other = await registerUser(server);
    const userToken = await loginUser(server, user, { localAddress: uniqueIp() });
    const { peerId } = await dashboard(server, userToken);
    const devToken = await deviceToken(server, { ...user, peerId }, { localAddress: uniqueIp() });
    const otherToken = await loginUser(server, other, { localAddress: uniqueIp() });
    // both work before the reset
    assert.equal((await dashboard(server, userToken)).username, user.username);
    assert.equal((await dashboard(server, devToken)).username, user.username);

    const { code } = await requestCode(server, smtp, user.email);
    // requesting a code alone revokes nothing
    assert.equal((await dashboard(server, userToken)).username, user.username);
    const pw = newPassword();
    assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw }), 200, PASSED);

    assertJson(await post(server, '/dashboard', { token: userToken }), 401, MSG.tokenInvalid);
    assertJson(await post(server, '/dashboard', { token: devToken }), 401, MSG.tokenInvalid);
    assertJson(await post(server, '/dashboard', { token: `Bearer ${userToken}` }), 401, MSG.tokenInvalid);
    // a token issued after the reset works; another account's tokens are untouched
    const fresh = await assertLogsIn(server, user, pw);
    assert.equal((await dashboard(server, fresh)).username, user.username);
    assert.equal((await dashboard(server, otherToken)).username, other.username);
  });

  it('consumes the code: using it a second time fails and keeps the password set the first time', async () => {
    const user = await registerUser(server);
    const { code } = await requestCode(server, smtp, user.email);
    const pw1 = newPassword();
    const pw2 = newPassword();
    assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw1 }), 200, PASSED);
    assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw2 }), 400, OTP_FAILED);
    await assertLogsIn(server, user, pw1);
    await assertLoginFails(server, user, pw2);
    await assertLoginFails(server, user, user.password);
  });

  it('accepts newPassword as an alias of password', async () => {
    const user = await registerUser(server);
    const { code } = await requestCode(server, smtp, user.email);
    const pw = newPassword();
    assertJson(await verifyOtp(server, { email: user.email, otp: code, newPassword: pw }), 200, PASSED);
    await assertLogsIn(server, user, pw);
    await assertLoginFails(server, user, user.password);
  });

  it('accepts the code as a JSON number (leading zeros dropped, as a number has them)', async () => {
    const user = await registerUser(server);
    // Whatever the code is: "012345" goes as 12345, and the server pads it back to six digits.
    const { code } = await requestCode(server, smtp, user.email);
    const pw = newPassword();
    const res = await post(server, '/verify_otp', {
      body: `{"email":${JSON.stringify(user.email)},"otp":${Number(code)},"password":${JSON.stringify(pw)}}`,
      headers: { 'content-type': 'application/json' }, localAddress: uniqueIp(),
    });
    assertJson(res, 200, PASSED);
    await assertLogsIn(server, user, pw);
  });

  it('finds the account whatever the letter case of the email', async () => {
    const user = await registerUser(server);
    const { code } = await requestCode(server, smtp, user.email);
    const pw = newPassword();
    assertJson(await verifyOtp(server, { email: user.email.toUpperCase(), otp: code, password: pw }), 200, PASSED);
    await assertLogsIn(server, user, pw);
  });

  it('a wrong code → 400 "OTP verification Failed" and changes nothing; the right code still works', async () => {
    const user = await registerUser(server);
    const { code } = await requestCode(server, smtp, user.email);
    const pw = newPassword();
    assertJson(await verifyOtp(server, { email: user.email, otp: otherCode(code), password: pw }), 400, OTP_FAILED);
    await assertLogsIn(server, user, user.password);
    await assertLoginFails(server, user, pw);
    assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw }), 200, PASSED);
    await assertLogsIn(server, user, pw);
  });

  it('codes that are not the 6 digits sent (letters, 7 digits, 5 digits) are wrong codes', async () => {
    const user = await registerUser(server);
    const { code } = await requestCode(server, smtp, user.email);
    const pw = newPassword();
    for (const otp of ['abcdef', `${code}0`, code.slice(1)]) {
      assertJson(await verifyOtp(server, { email: user.email, otp, password: pw }), 400, OTP_FAILED);
    }
    await assertLogsIn(server, user, user.password);
    assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw }), 200, PASSED);
  });

  it('a code belongs to its account: another account\'s code fails for it', async () => {
    const a = await registerUser(server);
    const b = await registerUser(server);
    const codeA = (await requestCode(server, smtp, a.email)).code;
    const codeB = (await requestCode(server, smtp, b.email)).code;
    assert.notEqual(codeA, codeB, 'two accounts got the same code');
    const pw = newPassword();
    assertJson(await verifyOtp(server, { email: b.email, otp: codeA, password: pw }), 400, OTP_FAILED);
    await assertLogsIn(server, b, b.password);
    await assertLoginFails(server, b, pw);
    assertJson(await verifyOtp(server, { email: a.email, otp: codeA, password: pw }), 200, PASSED);
    assertJson(await verifyOtp(server, { email: b.email, otp: codeB, password: pw }), 200, PASSED);
  });

  it('an account that never asked for a code → 400 "OTP verification Failed", nothing changes', async () => {
    const user = await registerUser(server);
    const pw = newPassword();
    assertJson(await verifyOtp(server, { email: user.email, otp: '123456', password: pw }), 400, OTP_FAILED);
    await assertLogsIn(server, user, user.password);
    await assertLoginFails(server, user, pw);
  });

  it('5 wrong guesses burn the code: the right code fails afterwards; a new request gives a working code', async () => {
    const user = await registerUser(server);
    const { code } = await requestCode(server, smtp, user.email);
    const pw = newPassword();
    for (let i = 1; i <= 5; i += 1) {
      const wrong = String((Number(code) + i) % 1_000_000).padStart(6, '0');
      assertJson(await verifyOtp(server, { email: user.email, otp: wrong, password: pw }), 400, OTP_FAILED);
    }
    assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw }), 400, OTP_FAILED);
    await assertLogsIn(server, user, user.password);
    await assertLoginFails(server, user, pw);
    const fresh = await requestCode(server, smtp, user.email);
    assertJson(await verifyOtp(server, { email: user.email, otp: fresh.code, password: pw }), 200, PASSED);
    await assertLogsIn(server, user, pw);
  });

  it('4 wrong guesses leave the code usable', async () => {
    const user = await registerUser(server);
    const { code } = await requestCode(server, smtp, user.email);
    const pw = newPassword();
    for (let i = 1; i <= 4; i += 1) {
      const wrong = String((Number(code) + i) % 1_000_000).padStart(6, '0');
      assertJson(await verifyOtp(server, { email: user.email, otp: wrong, password: pw }), 400, OTP_FAILED);
    }
    assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw }), 200, PASSED);
    await assertLogsIn(server, user, pw);
  });

  it('a new password breaking the registration rules → 400 and the code is not consumed', async () => {
    const user = await registerUser(server);
    const { code } = await requestCode(server, smtp, user.email);
    for (const bad of ['short12', '', 'é'.repeat(7)]) {
      assertJson(await verifyOtp(server, { email: user.email, otp: code, password: bad }), 400, SHORT_PASSWORD);
    }
    assertJson(await verifyOtp(server, { email: user.email, otp: code, newPassword: 'short12' }), 400, SHORT_PASSWORD);
    assertJson(await verifyOtp(server, { email: user.email, otp: code, password: 'p'.repeat(1025) }), 400, LONG_PASSWORD);
    await assertLogsIn(server, user, user.password);
    await assertLoginFails(server, user, 'short12');
    // 5 rejected passwords, as many as the wrong guesses that burn a code: none may count as a guess
    const pw = `${crypto.randomBytes(6).toString('base64url')}`; // exactly 8 characters: allowed
    assert.equal(pw.length, 8);
    assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw }), 200, PASSED);
    await assertLogsIn(server, user, pw);
  });

  it('an unknown email → 404 "User email or username incorrect or does not exist"', async () => {
    const stranger = newCredentials();
    assertJson(await verifyOtp(server, { email: stranger.email, otp: '123456', password: newPassword() }), 404, VERIFY_UNKNOWN);
  });

  describe('missing fields (400, checked in the order email, otp, password)', () => {
    for (const [label, body, expected] of [
      ['an empty object', {}, VERIFY_NO_EMAIL],
      ['no email', { otp: '123456', password: 'long-enough-password' }, VERIFY_NO_EMAIL],
      ['only an email', { email: 'someone@example.com' }, VERIFY_NO_OTP],
      ['no otp', { email: 'someone@example.com', password: 'long-enough-password' }, VERIFY_NO_OTP],
      ['no password', { email: 'someone@example.com', otp: '123456' }, VERIFY_NO_PASSWORD],
      ['only a password', { password: 'long-enough-password' }, VERIFY_NO_EMAIL],
    ]) {
      it(`${label} → 400 ${JSON.stringify(expected)}`, async () => {
        assertJson(await verifyOtpRaw(server, { json: body }), 400, expected);
      });
    }

    it('an empty body → 400 "Email not found"', async () => {
      assertJson(await verifyOtpRaw(server, {}), 400, VERIFY_NO_EMAIL);
    });

    it('a missing password for a real account with the right code consumes nothing', async () => {
      const user = await registerUser(server);
      const { code } = await requestCode(server, smtp, user.email);
      assertJson(await verifyOtp(server, { email: user.email, otp: code }), 400, VERIFY_NO_PASSWORD);
      assertJson(await verifyOtp(server, { email: user.email, password: newPassword() }), 400, VERIFY_NO_OTP);
      await assertLogsIn(server, user, user.password);
      const pw = newPassword();
      assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw }), 200, PASSED);
      await assertLogsIn(server, user, pw);
    });
  });

  describe('fields of the wrong type (400 "status":"failure", nothing changes)', () => {
    for (const [label, make] of [
      ['a numeric email', (u, code, pw) => ({ email: 12345, otp: code, password: pw })],
      ['an object otp', (u, code, pw) => ({ email: u.email, otp: { code }, password: pw })],
      ['a boolean otp', (u, code, pw) => ({ email: u.email, otp: true, password: pw })],
      ['a numeric password', (u, code) => ({ email: u.email, otp: code, password: 12345678 })],
      ['an array newPassword', (u, code, pw) => ({ email: u.email, otp: code, newPassword: [pw] })],
    ]) {
      it(`${label}`, async () => {
        const user = await registerUser(server);
        const { code } = await requestCode(server, smtp, user.email);
        const pw = newPassword();
        const res = await verifyOtp(server, make(user, code, pw));
        const body = assertJson(res, 400);
        assert.equal(body.status, 'failure', res.text);
        assert.ok(typeof (body.message ?? body.Message) === 'string' && (body.message ?? body.Message).length > 0, res.text);
        assert.notDeepStrictEqual(body, PASSED);
        await assertLogsIn(server, user, user.password);
        await assertLoginFails(server, user, pw);
        await assertLoginFails(server, user, '12345678');
      });
    }
  });

  describe('body rules (as on other routes, plus "status":"failure")', () => {
    it('a wrong Content-Type → 415 and nothing changes', async () => {
      const user = await registerUser(server);
      const { code } = await requestCode(server, smtp, user.email);
      const pw = newPassword();
      const res = await verifyOtpRaw(server, {
        body: JSON.stringify({ email: user.email, otp: code, password: pw }), headers: { 'content-type': 'text/plain' },
      });
      assertJson(res, 415, withStatus(MSG.wrongContentType));
      await assertLogsIn(server, user, user.password);
      assertJson(await verifyOtp(server, { email: user.email, otp: code, password: pw }), 200, PASSED);
    });

    it('malformed JSON → 400', async () => {
      const res = await verifyOtpRaw(server, { body: '{"email":"a@example.com","otp":', headers: { 'content-type': 'application/json' } });
      assertJson(res, 400, withStatus(MSG.malformed));
    });

    it('a JSON array → 400 "Request body must be a JSON object"', async () => {
      assertJson(await verifyOtpRaw(server, { json: ['a@example.com', '123456', 'long-enough-password'] }), 400, withStatus(MSG.notObject));
    });

    it('invalid UTF-8 → 400', async () => {
      const body = Buffer.concat([Buffer.from('{"email":"a@example.com","otp":"123456","password":"pw'), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from('-long-enough"}')]);
      assertJson(await verifyOtpRaw(server, { body, headers: { 'content-type': 'application/json' } }), 400, withStatus(MSG.badUtf8));
    });

    it('a body over the 64 KiB default → 413 and nothing changes', async () => {
      const user = await registerUser(server);
      const { code } = await requestCode(server, smtp, user.email);
      const pw = newPassword();
      const res = await verifyOtpRaw(server, {
        body: paddedJson({ email: user.email, otp: code, password: pw }, DEFAULT_MAX_JSON_BODY * 2),
        headers: { 'content-type': 'application/json' },
      });
      assertJson(res, 413, withStatus(MSG.tooLarge));
      await assertLogsIn(server, user, user.password);
      await assertLoginFails(server, user, pw);
    });
  });
});

// ---------------------------------------------------------------------------
// Expiry: PEERVAULT_OTP_TTL_SECS=2
// ---------------------------------------------------------------------------

describe('an expired code (PEERVAULT_OTP_TTL_SECS=2, the server clock moved on)', () => {
  let ttlServer;
  before(async () => { ttlServer = await startServer({ PEERVAULT_SMTP_URL: smtp.url, PEERVAULT_OTP_TTL_SECS: 2, ...TEST_CLOCK }); });
  after(async () => { await ttlServer?.stop(); });

  it('the mail says "The code is valid for 2 seconds." (a TTL under 120 s is given in seconds)', async () => {
    const user = await registerUser(ttlServer);
    const { mail } = await requestCode(ttlServer, smtp, user.email);
    assertResetMail(mail, { to: user.email, validity: 'The code is valid for 2 seconds.' });
  });

  it('3 s after the mail, the code → 400 "OTP verification Failed" and the password is unchanged', async () => {
    const user = await registerUser(ttlServer);
    const { code } = await requestCode(ttlServer, smtp, user.email);
    await advanceClock(ttlServer, 3_000);
    const pw = newPassword();
    assertJson(await verifyOtp(ttlServer, { email: user.email, otp: code, password: pw }), 400, OTP_FAILED);
    await assertLogsIn(ttlServer, user, user.password);
    await assertLoginFails(ttlServer, user, pw);
  });

  it('a code used at once still works on that server', async () => {
    const user = await registerUser(ttlServer);
    const { code } = await requestCode(ttlServer, smtp, user.email);
    const pw = newPassword();
    assertJson(await verifyOtp(ttlServer, { email: user.email, otp: code, password: pw }), 200, PASSED);
    await assertLogsIn(ttlServer, user, pw);
  });
});

// ---------------------------------------------------------------------------
// Mail settings: product name, sender, TTL in minutes, max attempts
// ---------------------------------------------------------------------------

describe('mail settings (PEERVAULT_PRODUCT_NAME, PEERVAULT_MAIL_FROM, PEERVAULT_OTP_TTL_SECS=120, PEERVAULT_OTP_MAX_ATTEMPTS=2)', () => {
  let custom;
  before(async () => {
    custom = await startServer({
      PEERVAULT_SMTP_URL: smtp.url,
      PEERVAULT_PRODUCT_NAME: 'Äcme Vault', // non-ASCII: the Subject carries an RFC 2047 encoded word
      PEERVAULT_MAIL_FROM: 'Acme Support <support@acme.test>',
      PEERVAULT_OTP_TTL_SECS: 120,
      PEERVAULT_OTP_MAX_ATTEMPTS: 2,
    });
  });
  after(async () => { await custom?.stop(); });

  it('the mail comes from the configured sender, names the product and says "valid for 2 minutes"', async () => {
    const user = await registerUser(custom);
    const { mail, code } = await requestCode(custom, smtp, user.email);
    assertResetMail(mail, {
      to: user.email,
      from: { name: 'Acme Support', address: 'support@acme.test' },
      subject: 'Your Äcme Vault password reset code',
      validity: 'The code is valid for 2 minutes.',
    });
    assert.equal(mail.header('x-mailfrom'), 'support@acme.test', 'SMTP envelope sender');
    const pw = newPassword();
    assertJson(await verifyOtp(custom, { email: user.email, otp: code, password: pw }), 200, PASSED);
  });

  it('2 wrong guesses burn the code when PEERVAULT_OTP_MAX_ATTEMPTS=2', async () => {
    const user = await registerUser(custom);
    const { code } = await requestCode(custom, smtp, user.email);
    const pw = newPassword();
    assertJson(await verifyOtp(custom, { email: user.email, otp: otherCode(code), password: pw }), 400, OTP_FAILED);
    assertJson(await verifyOtp(custom, { email: user.email, otp: otherCode(otherCode(code)), password: pw }), 400, OTP_FAILED);
    assertJson(await verifyOtp(custom, { email: user.email, otp: code, password: pw }), 400, OTP_FAILED);
    await assertLogsIn(custom, user, user.password);
    await assertLoginFails(custom, user, pw);
  });
});

// ---------------------------------------------------------------------------
// SMTP failures
// ---------------------------------------------------------------------------

describe('SMTP server unreachable → 503', () => {
  it('a server whose SMTP port is closed answers 503 "Unable to send otp..." and changes nothing', async () => {
    const closedPort = await freePort();
    const down = await startServer({ PEERVAULT_SMTP_URL: `smtp://127.0.0.1:${closedPort}` });
    try {
      const user = await registerUser(down);
      assertJson(await sendReset(down, user.email), 503, CANNOT_SEND);
      assertJson(await verifyOtp(down, { email: user.email, otp: '123456', password: newPassword() }), 400, OTP_FAILED);
      await assertLogsIn(down, user, user.password);
      // an unknown email is still 404: the account is looked up before any mail is tried
      assertJson(await sendReset(down, newCredentials().email), 404, SEND_UNKNOWN);
    } finally {
      await down.stop();
    }
  });

  it('when the SMTP server stops, the next request is 503 and the code sent earlier no longer works; once it is back, a new code works', async () => {
    let ownSmtp = await startSmtp();
    const { port } = ownSmtp;
    const srv = await startServer({ PEERVAULT_SMTP_URL: ownSmtp.url });
    try {
      const user = await registerUser(srv);
      const { code } = await requestCode(srv, ownSmtp, user.email);
      await ownSmtp.stop();
      assertJson(await sendReset(srv, user.email), 503, CANNOT_SEND);
      const pw = newPassword();
      assertJson(await verifyOtp(srv, { email: user.email, otp: code, password: pw }), 400, OTP_FAILED);
      await assertLogsIn(srv, user, user.password);
      await assertLoginFails(srv, user, pw);

      ownSmtp = await startSmtp({ port });
      const fresh = await requestCode(srv, ownSmtp, user.email);
      assertJson(await verifyOtp(srv, { email: user.email, otp: code, password: pw }), 400, OTP_FAILED);
      assertJson(await verifyOtp(srv, { email: user.email, otp: fresh.code, password: pw }), 200, PASSED);
      await assertLogsIn(srv, user, pw);
    } finally {
      await srv.stop();
      await ownSmtp.stop();
    }
  });
});

// ---------------------------------------------------------------------------
// Throttling
// ---------------------------------------------------------------------------

describe('throttling (PEERVAULT_RESET_MAX_REQUESTS_PER_EMAIL=2, _PER_IP=3; LOGIN_MAX_FAILURES_PER_ACCOUNT=3, _PER_IP=5)', () => {
  const PER_EMAIL = 2;
  const PER_IP = 3;
  const FAIL_PER_ACCOUNT = 3;
  const FAIL_PER_IP = 5;
  let thr;
  before(async () => {
    thr = await startServer({
      PEERVAULT_SMTP_URL: smtp.url,
      PEERVAULT_RESET_MAX_REQUESTS_PER_EMAIL: PER_EMAIL,
      PEERVAULT_RESET_MAX_REQUESTS_PER_IP: PER_IP,
      PEERVAULT_LOGIN_MAX_FAILURES_PER_ACCOUNT: FAIL_PER_ACCOUNT,
      PEERVAULT_LOGIN_MAX_FAILURES_PER_IP: FAIL_PER_IP,
    });
  });
  after(async () => { await thr?.stop(); });

  describe('POST /send_reset_email', () => {
    it(`request number ${PER_EMAIL + 1} for one email (from any address) → 429, sends nothing and keeps the last code`, async () => {
      const user = await registerUser(thr);
      await requestCode(thr, smtp, user.email);
      const { code } = await requestCode(thr, smtp, user.email);
      const res = await sendReset(thr, user.email);
      assertJson(res, 429, TOO_MANY);
      assertJson(await sendReset(thr, user.email.toUpperCase()), 429, TOO_MANY);
      await assertNoMailTo(smtp, user.email, PER_EMAIL);
      const pw = newPassword();
      assertJson(await verifyOtp(thr, { email: user.email, otp: code, password: pw }), 200, PASSED);
      await assertLogsIn(thr, user, pw);
    });

    it('requests for an unknown email count too: 404, 404, then 429', async () => {
      const email = newCredentials().email;
      for (let i = 0; i < PER_EMAIL; i += 1) assertJson(await sendReset(thr, email), 404, SEND_UNKNOWN);
      assertJson(await sendReset(thr, email), 429, TOO_MANY);
    });

    it(`after ${PER_IP} requests from one address, that address gets 429 while another address is served`, async () => {
      const ip = uniqueIp();
      for (let i = 0; i < PER_IP; i += 1) {
        const u = await registerUser(thr);
        await requestCode(thr, smtp, u.email, ip);
      }
      const user = await registerUser(thr);
      assertJson(await sendReset(thr, user.email, ip), 429, TOO_MANY);
      await assertNoMailTo(smtp, user.email, 0);
      const { code } = await requestCode(thr, smtp, user.email, uniqueIp());
      assertJson(await verifyOtp(thr, { email: user.email, otp: code, password: newPassword() }), 200, PASSED);
    });

    it('requests for unknown emails count toward the address budget', async () => {
      const ip = uniqueIp();
      for (let i = 0; i < PER_IP; i += 1) assertJson(await sendReset(thr, newCredentials().email, ip), 404, SEND_UNKNOWN);
      const user = await registerUser(thr);
      assertJson(await sendReset(thr, user.email, ip), 429, TOO_MANY);
      await assertNoMailTo(smtp, user.email, 0);
    });

    it('field errors are still reported as such from a throttled address', async () => {
      const ip = uniqueIp();
      for (let i = 0; i < PER_IP; i += 1) assertJson(await sendReset(thr, newCredentials().email, ip), 404, SEND_UNKNOWN);
      assertJson(await post(thr, '/send_reset_email', { json: {}, localAddress: ip }), 400, fail('Missing email field in request body'));
      assertJson(await post(thr, '/send_reset_email', { json: { email: 7 }, localAddress: ip }), 400, fail('email must be a string'));
      assertJson(await sendReset(thr, newCredentials().email, ip), 429, TOO_MANY);
    });
  });

  describe('POST /verify_otp', () => {
    it(`after ${FAIL_PER_ACCOUNT} wrong guesses for an account (from any address), even the right code → 429`, async () => {
      const user = await registerUser(thr);
      const { code } = await requestCode(thr, smtp, user.email);
      const pw = newPassword();
      for (let i = 1; i <= FAIL_PER_ACCOUNT; i += 1) {
        const wrong = String((Number(code) + i) % 1_000_000).padStart(6, '0');
        assertJson(await verifyOtp(thr, { email: user.email, otp: wrong, password: pw }), 400, OTP_FAILED);
      }
      const res = await verifyOtp(thr, { email: user.email, otp: code, password: pw });
      assertJson(res, 429, TOO_MANY);
      assertJson(await verifyOtp(thr, { email: user.email.toUpperCase(), otp: code, password: pw }), 429, TOO_MANY);
      // the new password was not set (the account may be locked for /login too: a 429 also means "not logged in")
      const r = await login(thr, user.username, pw);
      assert.ok(r.status === 401 || r.status === 429, `login with the new password: ${r.status} ${r.text}`);
    });

    it(`after ${FAIL_PER_IP} wrong guesses from one address (different accounts), that address gets 429 while another is served`, async () => {
      const ip = uniqueIp();
      for (let i = 0; i < FAIL_PER_IP; i += 1) {
        const u = await registerUser(thr);
        const { code } = await requestCode(thr, smtp, u.email);
        assertJson(await verifyOtp(thr, { email: u.email, otp: otherCode(code), password: newPassword() }, ip), 400, OTP_FAILED);
      }
      const user = await registerUser(thr);
      const { code } = await requestCode(thr, smtp, user.email);
      const pw = newPassword();
      assertJson(await verifyOtp(thr, { email: user.email, otp: code, password: pw }, ip), 429, TOO_MANY);
      await assertLogsIn(thr, user, user.password);
      assertJson(await verifyOtp(thr, { email: user.email, otp: code, password: pw }, uniqueIp()), 200, PASSED);
      await assertLogsIn(thr, user, pw);
    });
  });
});

// ---------------------------------------------------------------------------
// Outbox mode: no SMTP URL
// ---------------------------------------------------------------------------

describe('outbox mode (no PEERVAULT_SMTP_URL)', () => {
  let ob;
  before(async () => {
    // unset unless the environment running the tests sets it; then empty, which means the same
    ob = await startServer('PEERVAULT_SMTP_URL' in process.env ? { PEERVAULT_SMTP_URL: '' } : {});
  });
  after(async () => { await ob?.stop(); });

  it('writes the mail as <dataDir>/outbox/<uuid>.eml, logs it, and its code resets the password', async () => {
    const user = await registerUser(ob);
    const box = outboxBox(ob);
    const before = outboxMessages(ob.dataDir).length;
    const { code, mail } = await requestCode(ob, box, user.email);
    const all = outboxMessages(ob.dataDir);
    assert.equal(all.length, before + 1, 'exactly one new file in the outbox');
    assert.match(path.basename(mail.file), /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.eml$/i);
    assert.equal(path.dirname(mail.file), path.join(ob.dataDir, 'outbox'));
    assertResetMail(mail, { to: user.email, validity: 'The code is valid for 10 minutes.' });
    assert.match(ob.stdout() + ob.stderr(), /outbox/i, 'the server logs that mails go to the outbox');

    const pw = newPassword();
    assertJson(await verifyOtp(ob, { email: user.email, otp: code, password: pw }), 200, PASSED);
    await assertLogsIn(ob, user, pw);
    await assertLoginFails(ob, user, user.password);
  });

  it('an unknown email writes nothing', async () => {
    const before = fs.readdirSync(path.join(ob.dataDir, 'outbox')).length;
    assertJson(await sendReset(ob, newCredentials().email), 404, SEND_UNKNOWN);
    await sleep(200); // real time is the subject: a mail file that should not appear gets a moment to

    assert.equal(fs.readdirSync(path.join(ob.dataDir, 'outbox')).length, before);
  });

  it('a second request writes a second mail whose code replaces the first', async () => {
    const user = await registerUser(ob);
    const box = outboxBox(ob);
    const first = await requestCode(ob, box, user.email);
    const second = await requestCode(ob, box, user.email);
    assert.equal(mailsTo(box, user.email).length, 2);
    const pw = newPassword();
    if (first.code !== second.code) {
      assertJson(await verifyOtp(ob, { email: user.email, otp: first.code, password: pw }), 400, OTP_FAILED);
    }
    assertJson(await verifyOtp(ob, { email: user.email, otp: second.code, password: pw }), 200, PASSED);
  });
});
