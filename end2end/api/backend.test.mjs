// Which database and blob store the suite runs on, checked from the
// outside: `make test` runs every file of this suite twice, on SQLite and
// files under the data dir (the default) and on PostgreSQL and an S3 bucket
// (scripts/with-postgres.sh, scripts/with-s3.sh). A registered user must be a
// row in that very database, an upload an object in that very store, and bad
// URLs are refused at start-up with a message that echoes no secret.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import {
  startServer, registerUser, newUserWithToken, uploadFile, objectBytes, objectPath, onPostgres, onS3,
} from './harness.mjs';

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

describe(`the blob store (${onS3 ? 'S3' : 'files under the data dir'})`, () => {
  let server;
  before(async () => { server = await startServer(); });
  after(async () => { await server?.stop(); });

  it('an upload is an object in the store this server was given, and only there', async () => {
    const user = await newUserWithToken(server);
    const data = crypto.randomBytes(5000);
    const { cid } = await uploadFile(server, user.token, data);
    assert.ok((await objectBytes(server.dataDir, cid)).equals(data));
    assert.equal(fs.existsSync(objectPath(server.dataDir, cid)), !onS3, 'a local copy exactly when the store is local');
  });
});

describe('a bad PEERVAULT_BLOB_URL stops the start-up with a clear message', () => {
  const cases = [['not s3://', 'file:///tmp/x', /PEERVAULT_BLOB_URL must start with s3:\/\//],
    ['an invalid bucket name', 's3://Not_A_Bucket/x', /"Not_A_Bucket" is not a valid bucket name/]];
  if (onS3) {
    cases.push(['a bucket that does not exist', 's3://no-such-bucket-here/x', /cannot reach the bucket no-such-bucket-here/]);
  }
  for (const [label, url, expected] of cases) {
    it(label, async () => {
      await assert.rejects(startServer({ PEERVAULT_BLOB_URL: url }), (e) => {
        assert.match(e.message, expected);
        return true;
      });
    });
  }
  if (onS3) {
    it('wrong S3 credentials (the secret is not echoed)', async () => {
      await assert.rejects(startServer({ AWS_SECRET_ACCESS_KEY: 'hunter2-wrong-secret-key' }), (e) => {
        assert.match(e.message, /cannot reach the bucket/);
        assert.ok(!e.message.includes('hunter2'), e.message);
        return true;
      });
    });
  }
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
