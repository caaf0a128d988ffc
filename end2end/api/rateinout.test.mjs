// POST /rateinout (auth) {TotalIn, TotalOut, RateIn, RateOut}: the peer
// node's cumulative bandwidth counters (bytes) and rates (bytes/s).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, post, assertJson, MSG, newUserWithToken, dashboard, deviceToken,
} from './harness.mjs';

const OK = { message: 'Data updated successfully' };
const MAX_TOTAL = 2 ** 50; // 1 PiB: the largest total a device can report

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

const report = (token, json) => post(server, '/rateinout', { token, json });
const sample = (TotalIn, TotalOut, RateIn = 100, RateOut = 200) => ({ TotalIn, TotalOut, RateIn, RateOut });

async function accepted(token, json) {
  assertJson(await report(token, json), 200, OK);
}

/** The traffic figures of the dashboard, checking bandwidth_used = up + down. */
async function traffic(token) {
  const d = await dashboard(server, token);
  assert.equal(d.bandwidth_used, d.data_uploaded + d.data_downloaded, 'bandwidth_used = data_uploaded + data_downloaded');
  return { up: d.data_uploaded, down: d.data_downloaded, bw: d.bandwidth_used, space: d.space_used };
}

describe('POST /rateinout', () => {
  it('a first report sets data_downloaded = TotalIn, data_uploaded = TotalOut and bandwidth_used = their sum', async () => {
    const { token } = await newUserWithToken(server);
    const [tin, tout] = [500, 1000];
    await accepted(token, sample(tin, tout));
    assert.deepStrictEqual(await traffic(token), { up: tout, down: tin, bw: tin + tout, space: 0 });
  });

  it('a later, higher report replaces the totals instead of adding to them', async () => {
    const { token } = await newUserWithToken(server);
    await accepted(token, sample(500, 1000));
    const [tin, tout] = [700, 1500];
    await accepted(token, sample(tin, tout));
    assert.deepStrictEqual(await traffic(token), { up: tout, down: tin, bw: tin + tout, space: 0 });
  });

  it('repeating the same report changes nothing', async () => {
    const { token } = await newUserWithToken(server);
    await accepted(token, sample(123, 456));
    await accepted(token, sample(123, 456));
    assert.deepStrictEqual(await traffic(token), { up: 456, down: 123, bw: 579, space: 0 });
  });

  it('a lower TotalOut (node restart) banks the previous total: 1000 then 300 → 1300', async () => {
    const { token } = await newUserWithToken(server);
    const tin = 50;
    await accepted(token, sample(tin, 1000));
    await accepted(token, sample(tin, 300));
    assert.deepStrictEqual(await traffic(token), { up: 1000 + 300, down: tin, bw: 1000 + 300 + tin, space: 0 });
    // the banked amount is kept; the new counter keeps being replaced
    await accepted(token, sample(tin, 400));
    assert.equal((await traffic(token)).up, 1000 + 400);
  });

  it('a lower TotalIn banks the previous inbound total independently of TotalOut', async () => {
    const { token } = await newUserWithToken(server);
    await accepted(token, sample(800, 10));
    await accepted(token, sample(100, 20));
    assert.deepStrictEqual(await traffic(token), { up: 20, down: 800 + 100, bw: 20 + 800 + 100, space: 0 });
  });

  it('two restarts bank both earlier totals', async () => {
    const { token } = await newUserWithToken(server);
    await accepted(token, sample(0, 1000));
    await accepted(token, sample(0, 300));
    await accepted(token, sample(0, 200));
    assert.equal((await traffic(token)).up, 1000 + 300 + 200);
  });

  it('a counter reset to 0 banks the previous total', async () => {
    const { token } = await newUserWithToken(server);
    await accepted(token, sample(640, 320));
    await accepted(token, sample(0, 0));
    assert.deepStrictEqual(await traffic(token), { up: 320, down: 640, bw: 960, space: 0 });
  });

  it('accepts numeric strings for all four values', async () => {
    const { token } = await newUserWithToken(server);
    await accepted(token, { TotalIn: '1234', TotalOut: '5678', RateIn: '12.5', RateOut: '0' });
    assert.deepStrictEqual(await traffic(token), { up: 5678, down: 1234, bw: 1234 + 5678, space: 0 });
  });

  it('accepts all zeros', async () => {
    const { token } = await newUserWithToken(server);
    await accepted(token, sample(0, 0, 0, 0));
    assert.deepStrictEqual(await traffic(token), { up: 0, down: 0, bw: 0, space: 0 });
  });

  it('stores totals as whole bytes, dropping a fraction', async () => {
    const { token } = await newUserWithToken(server);
    await accepted(token, sample(100.9, '200.5'));
    assert.deepStrictEqual(await traffic(token), { up: 200, down: 100, bw: 300, space: 0 });
  });

  it(`accepts totals up to ${MAX_TOTAL}`, async () => {
    const { token } = await newUserWithToken(server);
    await accepted(token, sample(0, MAX_TOTAL, 0, MAX_TOTAL));
    assert.deepStrictEqual(await traffic(token), { up: MAX_TOTAL, down: 0, bw: MAX_TOTAL, space: 0 });
  });

  it('keeps each account its own counters', async () => {
    const a = await newUserWithToken(server);
    const b = await newUserWithToken(server);
    await accepted(a.token, sample(11, 22));
    await accepted(b.token, sample(33, 44));
    assert.deepStrictEqual(await traffic(a.token), { up: 22, down: 11, bw: 33, space: 0 });
    assert.deepStrictEqual(await traffic(b.token), { up: 44, down: 33, bw: 77, space: 0 });
  });

  it('accepts a device token (what the Android client sends)', async () => {
    const user = await newUserWithToken(server);
    const token = await deviceToken(server, user);
    await accepted(token, sample(7, 9));
    assert.deepStrictEqual(await traffic(user.token), { up: 9, down: 7, bw: 16, space: 0 });
  });

  describe('bad input changes nothing', () => {
    const PREV = sample(1000, 2000, 10, 20);
    let token;
    let baseline;
    // one account with a previous report; every rejected report must leave it as it was
    before(async () => {
      ({ token } = await newUserWithToken(server));
      await accepted(token, PREV);
      baseline = await traffic(token);
      assert.deepStrictEqual(baseline, { up: PREV.TotalOut, down: PREV.TotalIn, bw: PREV.TotalIn + PREV.TotalOut, space: 0 });
    });
    const rejects = async (opts, status, expected) => {
      const res = await post(server, '/rateinout', { token, ...opts });
      assertJson(res, status, expected);
      assert.deepStrictEqual(await traffic(token), baseline);
    };
    // all values lower than PREV, so a wrongly accepted report would also bank
    const lower = sample(1, 2, 3, 4);

    for (const field of ['TotalIn', 'TotalOut', 'RateIn', 'RateOut']) {
      it(`no ${field} → 400 "Data missing"`, async () => {
        const json = { ...lower };
        delete json[field];
        await rejects({ json }, 400, MSG.dataMissing);
      });

      for (const [label, value] of [
        ['negative', -1],
        ['a negative string', '-5'],
        ['a non-numeric string', 'abc'],
        ['an empty string', ''],
        ['null', null],
        ['a boolean', true],
        ['an array', [1]],
        ['an object', { v: 1 }],
      ]) {
        it(`${field} ${label} → 400 "Data missing"`, async () => {
          await rejects({ json: { ...lower, [field]: value } }, 400, MSG.dataMissing);
        });
      }

      it(`${field} above ${MAX_TOTAL} → 400 "${field} is too large"`, async () => {
        await rejects({ json: { ...lower, [field]: MAX_TOTAL + 1 } }, 400, { message: `${field} is too large` });
      });
    }

    it('an empty object → 400 "Data missing"', async () => {
      await rejects({ json: {} }, 400, MSG.dataMissing);
    });

    it('an empty body → 400 "Data missing"', async () => {
      await rejects({}, 400, MSG.dataMissing);
    });

    it('lower-case field names are not the contract fields → 400 "Data missing"', async () => {
      await rejects({ json: { totalIn: 1, totalOut: 2, rateIn: 3, rateOut: 4 } }, 400, MSG.dataMissing);
    });

    it('malformed JSON → 400', async () => {
      await rejects({ body: '{"TotalIn":1,"TotalOut":2,', headers: { 'content-type': 'application/json' } }, 400, MSG.malformed);
    });

    it('a wrong content type → 415', async () => {
      await rejects({ body: JSON.stringify(lower), headers: { 'content-type': 'text/plain' } }, 415, MSG.wrongContentType);
    });

    it('a JSON array → 400', async () => {
      await rejects({ json: [lower] }, 400, MSG.notObject);
    });

    it('no token → 401 "Token is missing"', async () => {
      assertJson(await post(server, '/rateinout', { json: lower }), 401, MSG.tokenMissing);
      assert.deepStrictEqual(await traffic(token), baseline);
    });
  });
});
