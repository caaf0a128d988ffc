// Which database the suite runs on, checked from the outside: `make test`
// runs every file of this suite twice, on SQLite (the default, a file in the
// data dir) and on PostgreSQL (scripts/with-postgres.sh). A registered user
// must be a row in that very database, and bad database URLs are refused
// at start-up with a message that does not echo the password.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { startServer, registerUser, onPostgres } from './harness.mjs';

describe(`the database (${onPostgres ? 'PostgreSQL' : 'SQLite'})`, () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  it('a registered user is a row in the database this server was given', async () => {
    const user = await registerUser(server);
    if (onPostgres) {
      assert.match(server.databaseUrl, /^postgres:\/\//);
      const sql = `SELECT username FROM users WHERE username = '${user.username}'`;
      const got = execFileSync('psql', [server.databaseUrl, '-qAtX', '-c', sql], { encoding: 'utf8' }).trim();
      assert.equal(got, user.username);
      assert.ok(!fs.existsSync(path.join(server.dataDir, 'peervault.db')), 'no SQLite file next to PostgreSQL');
    } else {
      const db = path.join(server.dataDir, 'peervault.db');
      assert.ok(fs.statSync(db).size > 0, 'the SQLite file exists');
      // The WAL holds the new row until a checkpoint; either file has the name.
      const bytes = Buffer.concat([db, `${db}-wal`].filter(fs.existsSync).map((f) => fs.readFileSync(f)));
      assert.ok(bytes.includes(Buffer.from(user.username)), 'the username is in the SQLite file');
    }
  });
});

describe('a bad DATABASE_URL stops the start-up with a clear message', () => {
  for (const [label, url, expected] of [
    ['an unknown scheme', 'mysql://root:hunter2secret@127.0.0.1/x', /unsupported DATABASE_URL scheme "mysql"/],
    ['PostgreSQL that is not there', 'postgres://pv:hunter2secret@127.0.0.1:1/x', /cannot connect to PostgreSQL/],
  ]) {
    it(label, async () => {
      await assert.rejects(startServer({ DATABASE_URL: url }), (e) => {
        assert.match(e.message, expected);
        assert.ok(!e.message.includes('hunter2secret'), `the password is not echoed: ${e.message}`);
        return true;
      });
    });
  }
});
