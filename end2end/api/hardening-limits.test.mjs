// Hardening of numeric and time limits: bandwidth counters saturate at the
// largest safe integer instead of overflowing what a client can read; a
// total above 2^50 is refused; a pledge under 1 MB is refused; and slow
// clients (headers or body trickling in, or nothing at all) are cut off
// while a slow but steady one is served.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  startServer, request, post, assertJson, MSG, newUserWithToken, registerUser, dashboard, onboard,
  serverFn, webLogin,
} from './harness.mjs';

const MAX_SAFE = Number.MAX_SAFE_INTEGER; // 9007199254740991
const MAX_TOTAL = 2 ** 50; // 1125899906842624, the largest accepted total

// ---------------------------------------------------------------------------
// Bandwidth counters
// ---------------------------------------------------------------------------

describe('bandwidth counters saturate (POST /rateinout)', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  const report = (token, TotalIn, TotalOut) => post(server, '/rateinout', { token, json: { TotalIn, TotalOut, RateIn: 0, RateOut: 0 } });
  const OK = { message: 'Data updated successfully' };

  /** Every number anywhere in `value`, with its path. */
  function numbers(value, at = '') {
    if (typeof value === 'number') return [[at, value]];
    if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => numbers(v, `${at}.${k}`));
    return [];
  }

  it('1100 reports alternating 2^50 and 0 (16 at a time): every answer 200, the dashboard saturates at 2^53-1', async () => {
    const user = await newUserWithToken(server);
    const REPORTS = 1100;
    const AT_ONCE = 16;
    // Each batch of 16 reports the same totals, and batches alternate
    // (in: 2^50, out: 0) / (in: 0, out: 2^50); every batch waits for the
    // previous one, so each switch is a restart of both counters and banks
    // 2^50: about 34 times 2^50 in each direction, far above 2^53.
    for (let start = 0, batch = 0; start < REPORTS; start += AT_ONCE, batch += 1) {
      const [tin, tout] = batch % 2 === 0 ? [MAX_TOTAL, 0] : [0, MAX_TOTAL];
      const n = Math.min(AT_ONCE, REPORTS - start);
      const answers = await Promise.all(Array.from({ length: n }, () => report(user.token, tin, tout)));
      for (const res of answers) assertJson(res, 200, OK);
    }
    const res = await post(server, '/dashboard', { token: user.token });
    const d = assertJson(res, 200);
    for (const [at, v] of numbers(d)) {
      assert.ok(Number.isSafeInteger(v) && v <= MAX_SAFE, `dashboard${at} = ${v} is not a safe integer (raw: ${res.text})`);
    }
    assert.equal(d.data_downloaded, MAX_SAFE, `data_downloaded (raw: ${res.text})`);
    assert.equal(d.data_uploaded, MAX_SAFE, `data_uploaded (raw: ${res.text})`);
    assert.equal(d.bandwidth_used, MAX_SAFE, `bandwidth_used (raw: ${res.text})`);

    const cookie = await webLogin(server, user);
    const page = await request(server, 'GET', '/dashboard', { headers: { cookie } });
    assert.equal(page.status, 200, page.text.slice(0, 300));
    assert.match(String(page.headers['content-type']), /^text\/html\b/i);
    const history = await serverFn(server, 'get_history', {}, { cookie });
    assert.equal(history.status, 200, history.text.slice(0, 300));
    assert.ok(history.json && Array.isArray(history.json.days), history.text.slice(0, 300));
    const dash = await serverFn(server, 'get_dashboard', {}, { cookie });
    assert.equal(dash.status, 200, dash.text.slice(0, 300));
  });

  for (const field of ['TotalIn', 'TotalOut']) {
    it(`${field} of 2^50+1 → 400 "${field} is too large", nothing changes`, async () => {
      const user = await newUserWithToken(server);
      assertJson(await report(user.token, 1000, 2000), 200, OK);
      const before = await dashboard(server, user.token);
      const json = { TotalIn: 1000, TotalOut: 2000, RateIn: 0, RateOut: 0, [field]: MAX_TOTAL + 1 };
      assertJson(await post(server, '/rateinout', { token: user.token, json }), 400, { message: `${field} is too large` });
      assert.deepStrictEqual(await dashboard(server, user.token), before);
    });
  }

  it('exactly 2^50 is accepted', async () => {
    const user = await newUserWithToken(server);
    assertJson(await report(user.token, MAX_TOTAL, MAX_TOTAL), 200, OK);
    const d = await dashboard(server, user.token);
    assert.equal(d.data_downloaded, MAX_TOTAL);
    assert.equal(d.data_uploaded, MAX_TOTAL);
  });

  it('a negative total → 400 "Data missing", nothing changes', async () => {
    const user = await newUserWithToken(server);
    assertJson(await report(user.token, 1000, 2000), 200, OK);
    const before = await dashboard(server, user.token);
    assertJson(await report(user.token, -1, 2000), 400, MSG.dataMissing);
    assert.deepStrictEqual(await dashboard(server, user.token), before);
  });
});

// ---------------------------------------------------------------------------
// Pledges
// ---------------------------------------------------------------------------

describe('a pledge is at least 1 MB (POST /onboarding)', () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  const AT_LEAST = { message: 'storageRented must be at least 1 MB' };
  const onboarded = (username, mb) => ({ message: `${username} has been onboarded! with ${mb} MB of storage` });

  for (const value of [1e-320, 0.5, '0.999']) {
    it(`storageRented ${JSON.stringify(value)} → 400 "storageRented must be at least 1 MB", pledge unchanged`, async () => {
      const user = await newUserWithToken(server);
      await onboard(server, user.token, 2048);
      assertJson(await post(server, '/onboarding', { token: user.token, json: { storageRented: value } }), 400, AT_LEAST);
      assert.equal((await dashboard(server, user.token)).storage_rented, 2048);
    });
  }

  for (const [value, shown] of [[1, '1'], [1.5, '1.5'], ['1', '1']]) {
    it(`storageRented ${JSON.stringify(value)} is accepted`, async () => {
      const user = await newUserWithToken(server);
      assertJson(await post(server, '/onboarding', { token: user.token, json: { storageRented: value } }), 200, onboarded(user.username, shown));
      assert.equal((await dashboard(server, user.token)).storage_rented, Number(value));
    });
  }
});

// ---------------------------------------------------------------------------
// Slow clients: PEERVAULT_HEADER_READ_TIMEOUT_SECS=2, PEERVAULT_BODY_TIMEOUT_SECS=2
// ---------------------------------------------------------------------------

describe('slow clients (PEERVAULT_HEADER_READ_TIMEOUT_SECS=2, PEERVAULT_BODY_TIMEOUT_SECS=2)', () => {
  const DEADLINE_MS = 10_000;
  let server;
  before(async () => {
    server = await startServer({ PEERVAULT_HEADER_READ_TIMEOUT_SECS: 2, PEERVAULT_BODY_TIMEOUT_SECS: 2 });
  });
  after(async () => { await server?.stop(); });

  /** A raw TCP connection to the server: what it received, and a promise of its close. */
  function connect() {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: '127.0.0.1', port: server.port });
      const chunks = [];
      let closedAt = null;
      const closed = new Promise((r) => sock.on('close', () => { closedAt = Date.now(); r(); }));
      sock.on('data', (c) => chunks.push(c));
      sock.on('error', () => { /* a reset is a close too */ });
      sock.once('connect', () => resolve({
        sock, closed, received: () => Buffer.concat(chunks).toString('latin1'), closedAt: () => closedAt,
      }));
      sock.once('error', reject);
    });
  }

  /** Resolves true once `cond()` holds or the connection closes, false at the deadline. */
  function within(conn, ms, cond = () => false) {
    return new Promise((resolve) => {
      let done = false;
      const finish = (v) => { if (!done) { done = true; clearTimeout(timer); clearInterval(poll); resolve(v); } };
      const timer = setTimeout(() => finish(false), ms);
      const poll = setInterval(() => { if (cond()) finish(true); }, 20);
      conn.closed.then(() => finish(true));
    });
  }

  /** The HTTP response in `raw`, if complete: { status, headers, body }. */
  function parseResponse(raw) {
    const end = raw.indexOf('\r\n\r\n');
    if (end < 0) return null;
    const [statusLine, ...lines] = raw.slice(0, end).split('\r\n');
    const headers = {};
    for (const l of lines) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    const status = Number(statusLine.split(' ')[1]);
    let body = raw.slice(end + 4);
    if (headers['content-length'] !== undefined) {
      const len = Number(headers['content-length']);
      if (Buffer.byteLength(body, 'latin1') < len) return null;
      body = body.slice(0, len);
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      if (!body.includes('\r\n0\r\n\r\n') && !body.startsWith('0\r\n\r\n')) return null;
      let out = '';
      let rest = body;
      for (;;) {
        const nl = rest.indexOf('\r\n');
        const size = parseInt(rest.slice(0, nl), 16);
        if (!size) break;
        out += rest.slice(nl + 2, nl + 2 + size);
        rest = rest.slice(nl + 2 + size + 2);
      }
      body = out;
    }
    return { status, headers, body: Buffer.from(body, 'latin1').toString('utf8') };
  }

  it('a client that sends part of its headers and then nothing is disconnected within 10 s', async () => {
    const conn = await connect();
    conn.sock.write('POST /login HTTP/1.1\r\nHost: x\r\n');
    const closed = await within(conn, DEADLINE_MS);
    conn.sock.destroy();
    assert.ok(closed, `the connection was still open after ${DEADLINE_MS} ms (received: ${JSON.stringify(conn.received().slice(0, 200))})`);
  });

  it('a client that connects and sends nothing is disconnected within 10 s', async () => {
    const conn = await connect();
    const closed = await within(conn, DEADLINE_MS);
    conn.sock.destroy();
    assert.ok(closed, `the connection was still open after ${DEADLINE_MS} ms`);
  });

  it('a body that stalls after 1 of 100 bytes gets 408 "Request body timed out" (or is closed) within 10 s', async () => {
    const conn = await connect();
    conn.sock.write('POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{');
    const ended = await within(conn, DEADLINE_MS, () => parseResponse(conn.received()) !== null);
    const raw = conn.received();
    conn.sock.destroy();
    assert.ok(ended, `no answer and still open after ${DEADLINE_MS} ms (received: ${JSON.stringify(raw.slice(0, 200))})`);
    if (raw.length > 0) {
      const res = parseResponse(raw);
      assert.ok(res, `an incomplete answer: ${JSON.stringify(raw.slice(0, 300))}`);
      assert.equal(res.status, 408, raw.slice(0, 300));
      assert.match(res.headers['content-type'] ?? '', /^application\/json\b/i);
      assert.deepStrictEqual(JSON.parse(res.body), { message: 'Request body timed out' });
    }
  });

  it('a slow but steady client (the body\'s last bytes one every 500 ms) gets its normal answer', async () => {
    const user = await registerUser(server);
    const body = Buffer.from(JSON.stringify({ username: user.username, password: user.password }));
    const conn = await connect();
    conn.sock.write(`POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
    // the first bytes at once, then the last 12 one every 500 ms: 6 s, three times the body timeout
    const slowFrom = body.length - 12;
    conn.sock.write(body.subarray(0, slowFrom));
    for (let i = slowFrom; i < body.length; i += 1) {
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(conn.closedAt(), null, `the server closed the connection after ${i} of ${body.length} body bytes`);
      conn.sock.write(body.subarray(i, i + 1));
    }
    const answered = await within(conn, DEADLINE_MS, () => parseResponse(conn.received()) !== null);
    const raw = conn.received();
    conn.sock.destroy();
    assert.ok(answered, `no answer within ${DEADLINE_MS} ms`);
    const res = parseResponse(raw);
    assert.ok(res, `no complete answer: ${JSON.stringify(raw.slice(0, 300))}`);
    assert.equal(res.status, 200, raw.slice(0, 300));
    assert.equal(typeof JSON.parse(res.body).token, 'string', res.body);
  });

  it('the server still answers normal requests', async () => {
    assertJson(await request(server, 'GET', '/healthz'), 200, { status: 'ok' });
    await newUserWithToken(server);
  });
});
