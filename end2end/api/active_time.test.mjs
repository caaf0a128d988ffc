// POST /active_time (auth) {active_time}: the device's uptime heartbeat.
// The server measures the time between accepted heartbeats itself, capped at
// HEARTBEAT_MAX_GAP, and credits credited_s/3600 * storage_MB/1024 * COIN_RATE.
// Time passes by moving the server's test clock (advanceClock), not by
// sleeping: the credited interval is the move plus the little real time the
// requests themselves took, which the bounds below allow for.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, post, assertJson, MSG, newUserWithToken, dashboard, deviceToken, onboard, coinsFor, advanceClock, TEST_CLOCK,
} from './harness.mjs';

const MAX_GAP_S = 1;
const COIN_RATE = 3600; // coins per GB-hour: 1 GB for 1 s earns 1 coin
const MAX_GAP_MS = MAX_GAP_S * 1000;
const EPS = 1e-9;
// slack for clock granularity when bounding a measured interval
const SLACK_MS = 2;

const NOT_A_NUMBER = { message: 'active_time must be a number' };
const NOT_POSITIVE = { message: 'active_time must be greater than 0' };
const TOO_BIG = { message: 'active_time must be at most 86400' };

let server;
before(async () => {
  server = await startServer({ PEERVAULT_HEARTBEAT_MAX_GAP_SECS: MAX_GAP_S, PEERVAULT_COIN_RATE: COIN_RATE, ...TEST_CLOCK });
});
after(async () => { await server?.stop(); });

const updated = (username) => ({ message: `${username} active time has been updated!` });
const coinsOf = async (token) => (await dashboard(server, token)).coins_earned;

/** A user who pledged `mb` MB; returns { ...user } with token. */
async function pledgedUser(mb) {
  const user = await newUserWithToken(server);
  if (mb > 0) await onboard(server, user.token, mb);
  return user;
}

/** Lets `ms` of server time pass. */
const pass = (ms) => advanceClock(server, ms);

/** Send one heartbeat, assert it was accepted; returns [sentAt, answeredAt] in ms. */
async function beat(user, value = '1', token = user.token) {
  const sent = performance.now();
  const res = await post(server, '/active_time', { token, json: { active_time: value } });
  const answered = performance.now();
  assertJson(res, 200, updated(user.username));
  return [sent, answered];
}

const assertClose = (actual, expected, what) => {
  assert.equal(typeof actual, 'number', `${what}: not a number`);
  assert.ok(Math.abs(actual - expected) <= EPS, `${what}: ${actual} != ${expected}`);
};

const assertBetween = (actual, lo, hi, what) => {
  assert.equal(typeof actual, 'number', `${what}: not a number`);
  assert.ok(actual >= lo - EPS && actual <= hi + EPS, `${what}: ${actual} not within [${lo}, ${hi}]`);
};

describe('POST /active_time', () => {
  it('the first heartbeat of an account is accepted and credits nothing', async () => {
    const user = await pledgedUser(1024);
    await beat(user, '1');
    assert.equal(await coinsOf(user.token), 0);
  });

  it(`a heartbeat ~2.5 s after the previous one credits only the ${MAX_GAP_S} s gap: 1 GB × 1 s × ${COIN_RATE}/3600 = 1 coin`, async () => {
    const mb = 1024;
    const user = await pledgedUser(mb);
    await beat(user);
    await pass(2500);
    await beat(user);
    assertClose(await coinsOf(user.token), coinsFor(MAX_GAP_MS, mb, COIN_RATE), 'coins_earned');
  });

  it('coins scale with the pledge: 2048 MB over a capped gap earns twice as much', async () => {
    const mb = 2048;
    const user = await pledgedUser(mb);
    await beat(user);
    await pass(1500);
    await beat(user);
    assertClose(await coinsOf(user.token), coinsFor(MAX_GAP_MS, mb, COIN_RATE), 'coins_earned');
  });

  it('each later heartbeat adds a ledger entry: three capped gaps sum up', async () => {
    const mb = 1024;
    const user = await pledgedUser(mb);
    await beat(user);
    for (let i = 0; i < 2; i += 1) {
      await pass(1200);
      await beat(user);
    }
    assertClose(await coinsOf(user.token), 2 * coinsFor(MAX_GAP_MS, mb, COIN_RATE), 'coins_earned');
  });

  it('credits the time the server measured, not the seconds claimed ("1" after ~0.5 s credits ~0.5 s)', async () => {
    const mb = 1024;
    const user = await pledgedUser(mb);
    const [s1, a1] = await beat(user, '1');
    await pass(500);
    const [s2, a2] = await beat(user, '1');
    const lo = coinsFor(Math.min(500 + s2 - a1 - SLACK_MS, MAX_GAP_MS), mb, COIN_RATE);
    const hi = coinsFor(Math.min(500 + a2 - s1 + SLACK_MS, MAX_GAP_MS), mb, COIN_RATE);
    assert.ok(hi < coinsFor(1000, mb, COIN_RATE), 'the test itself is too slow to tell a claim of 1 s apart');
    assertBetween(await coinsOf(user.token), lo, hi, 'coins_earned');
  });

  it('a claim of 86400 s cannot inflate the credit beyond the measured time', async () => {
    const mb = 1024;
    const user = await pledgedUser(mb);
    const [s1, a1] = await beat(user, 86400);
    await pass(300);
    const [s2, a2] = await beat(user, 86400);
    const lo = coinsFor(Math.min(300 + s2 - a1 - SLACK_MS, MAX_GAP_MS), mb, COIN_RATE);
    const hi = coinsFor(Math.min(300 + a2 - s1 + SLACK_MS, MAX_GAP_MS), mb, COIN_RATE);
    assertBetween(await coinsOf(user.token), lo, hi, 'coins_earned');
  });

  for (const [label, value] of [
    ['the string "1" (what the Android client sends)', '1'],
    ['the number 1', 1],
    ['a fractional string', '0.5'],
    ['a numeric seconds count', 600],
    ['exactly 86400', 86400],
    ['the string "86400"', '86400'],
  ]) {
    it(`accepts ${label}`, async () => {
      const user = await pledgedUser(1024);
      await beat(user, value);
    });
  }

  it('a user who pledged nothing earns nothing, though heartbeats are accepted', async () => {
    const user = await pledgedUser(0);
    await beat(user);
    await pass(1200);
    await beat(user);
    assert.equal(await coinsOf(user.token), 0);
  });

  it('accepts a device token', async () => {
    const mb = 1024;
    const user = await pledgedUser(mb);
    const token = await deviceToken(server, user);
    await beat(user, '1', token);
    await pass(1200);
    await beat(user, '1', token);
    assertClose(await coinsOf(user.token), coinsFor(MAX_GAP_MS, mb, COIN_RATE), 'coins_earned');
  });

  it('10 concurrent heartbeats never credit more than the wall-clock time elapsed', async () => {
    const mb = 1024;
    const user = await pledgedUser(mb);
    const [s1, a1] = await beat(user);
    await pass(600);
    const sent = performance.now();
    await Promise.all(Array.from({ length: 10 }, () => beat(user)));
    const done = performance.now();
    const coins = await coinsOf(user.token);
    // at least the interval up to the first of the ten was credited once ...
    const lo = coinsFor(Math.min(600 + sent - a1 - SLACK_MS, MAX_GAP_MS), mb, COIN_RATE);
    // ... and never more than the time that passed from the first heartbeat to the last answer
    const hi = coinsFor(600 + done - s1 + SLACK_MS, mb, COIN_RATE);
    assertBetween(coins, lo, hi, 'coins_earned after 10 concurrent heartbeats');
  });

  it('10 concurrent first heartbeats of a new account credit at most the time they took', async () => {
    const mb = 1024;
    const user = await pledgedUser(mb);
    const sent = performance.now();
    await Promise.all(Array.from({ length: 10 }, () => beat(user)));
    const done = performance.now();
    assertBetween(await coinsOf(user.token), 0, coinsFor(done - sent + SLACK_MS, mb, COIN_RATE), 'coins_earned');
  });

  describe('bad input changes nothing', () => {
    const cases = [
      ['no active_time field', { json: { activeTime: 1 } }, MSG.missing('active_time')],
      ['an empty body', {}, MSG.missing('active_time')],
      ['a non-numeric string', { json: { active_time: 'abc' } }, NOT_A_NUMBER],
      ['a number with a unit', { json: { active_time: '10s' } }, NOT_A_NUMBER],
      ['an empty string', { json: { active_time: '' } }, NOT_A_NUMBER],
      ['a boolean', { json: { active_time: true } }, NOT_A_NUMBER],
      ['an array', { json: { active_time: [1] } }, NOT_A_NUMBER],
      ['an object', { json: { active_time: { s: 1 } } }, NOT_A_NUMBER],
      ['zero', { json: { active_time: 0 } }, NOT_POSITIVE],
      ['the string "0"', { json: { active_time: '0' } }, NOT_POSITIVE],
      ['a negative number', { json: { active_time: -5 } }, NOT_POSITIVE],
      ['a negative string', { json: { active_time: '-1' } }, NOT_POSITIVE],
      ['86401', { json: { active_time: 86401 } }, TOO_BIG],
      ['the string "86400.5"', { json: { active_time: '86400.5' } }, TOO_BIG],
      ['an absurd number', { json: { active_time: 1e300 } }, TOO_BIG],
      ['malformed JSON', { body: '{"active_time":', headers: { 'content-type': 'application/json' } }, MSG.malformed],
      ['a wrong content type', { body: '{"active_time":"1"}', headers: { 'content-type': 'text/plain' } }, MSG.wrongContentType, 415],
      ['a JSON array', { json: [{ active_time: '1' }] }, MSG.notObject],
    ];

    for (const [label, opts, expected, status = 400] of cases) {
      it(`${label} → ${status} ${JSON.stringify(expected)}, coins unchanged`, async () => {
        const mb = 1024;
        const user = await pledgedUser(mb);
        await beat(user);
        await pass(1100);
        const res = await post(server, '/active_time', { token: user.token, ...opts });
        assertJson(res, status, expected);
        // nothing was credited by the rejected heartbeat
        assert.equal(await coinsOf(user.token), 0);
      });
    }

    it('rejected heartbeats do not credit, and neither start nor restart the clock', async () => {
      const mb = 1024;
      const user = await pledgedUser(mb);
      // before any accepted heartbeat: rejected ones must not start the clock
      for (const [, opts, expected, status = 400] of cases) {
        assertJson(await post(server, '/active_time', { token: user.token, ...opts }), status, expected);
      }
      await pass(1100);
      await beat(user); // the first accepted heartbeat: credits nothing
      assert.equal(await coinsOf(user.token), 0, 'a rejected heartbeat started the clock');
      // between two accepted heartbeats: rejected ones must not restart it
      await pass(500);
      for (const [, opts, expected, status = 400] of cases) {
        assertJson(await post(server, '/active_time', { token: user.token, ...opts }), status, expected);
      }
      await pass(800);
      await beat(user); // >= 1.3 s after the first accepted one: a full capped gap
      assertClose(await coinsOf(user.token), coinsFor(MAX_GAP_MS, mb, COIN_RATE), 'coins_earned (a rejected heartbeat restarted the clock?)');
    });

    it('no token → 401 and no heartbeat is recorded', async () => {
      const mb = 1024;
      const user = await pledgedUser(mb);
      assertJson(await post(server, '/active_time', { json: { active_time: '1' } }), 401, MSG.tokenMissing);
      await pass(1100);
      await beat(user);
      assert.equal(await coinsOf(user.token), 0);
    });
  });
});
