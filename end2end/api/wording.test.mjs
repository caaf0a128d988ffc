// One error, two wordings (issue 11, typed errors): the services say what
// went wrong (a kind); the JSON routes answer the contract's exact message
// for it, the pages' server functions their own. Same request, same state,
// both transports.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  startServer, post, assertJson, newCredentials, registerUser, newUserWithToken, serverFn, assertFnError,
  webLogin, uploadFile,
} from './harness.mjs';

let server;
before(async () => { server = await startServer(); });
after(async () => { await server?.stop(); });

describe('the same error in the contract\'s words and in the pages\' words', () => {
  it('a taken username: JSON 409 "User already exist"; the register page 409 in its words', async () => {
    const user = await registerUser(server);
    const again = { ...newCredentials(), username: user.username };
    assertJson(await post(server, '/register', { json: again }), 409, { message: 'User already exist' });
    assertFnError(await serverFn(server, 'register_account', again), 409, 'That username or email is already registered.');
  });

  it('a file the account does not store: JSON 404 "Invalid Credentials"; the files page 404 in its words', async () => {
    const user = await newUserWithToken(server);
    const other = await newUserWithToken(server);
    const { cid } = await uploadFile(server, other.token, Buffer.from('not yours'), { filename: 'x.txt' });
    assertJson(await post(server, '/download_file', { token: user.token, json: { cid } }), 404, { message: 'Invalid Credentials' });
    assertJson(await post(server, '/delete_file', { token: user.token, json: { cid } }), 404, { message: 'Invalid Credentials' });
    const cookie = await webLogin(server, user);
    const gone = 'This file is no longer in your account. Reload the page to see your files.';
    assertFnError(await serverFn(server, 'download_my_file', { cid }, { cookie }), 404, gone);
    assertFnError(await serverFn(server, 'delete_my_file', { cid }, { cookie }), 404, gone);
  });

  it('an unknown email: /send_reset_email and /verify_otp each in their words; the reset page in its own', async () => {
    const { email } = newCredentials();
    assertJson(await post(server, '/send_reset_email', { json: { email } }), 404,
      { status: 'failure', message: 'Email not found, Please register first' });
    assertJson(await post(server, '/verify_otp', { json: { email, otp: '123456', password: 'new-password-1' } }), 404,
      { status: 'failure', message: 'User email or username incorrect or does not exist' });
    const page = 'No account uses this email. Check it, or register first.';
    assertFnError(await serverFn(server, 'request_reset_code', { email }), 404, page);
    assertFnError(await serverFn(server, 'reset_with_code', { email, code: '123456', new_password: 'new-password-1' }), 404, page);
  });

  it('a wrong code: /verify_otp 400 {"Message":"OTP verification Failed"}; the reset page 400 in its words', async () => {
    const user = await registerUser(server);
    assertJson(await post(server, '/verify_otp', { json: { email: user.email, otp: '000000', password: 'new-password-1' } }), 400,
      { status: 'failure', Message: 'OTP verification Failed' });
    assertFnError(await serverFn(server, 'reset_with_code', { email: user.email, code: '000000', new_password: 'new-password-1' }), 400,
      'That code is wrong or has expired. Ask for a new one.');
  });
});
