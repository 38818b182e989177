// getPhoneNumber (code and encryptedData flows), decryptUserInfo and logout against a fake `wx`.
//   node --test sdk/miniprogram/test/
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { createClient, WxbridgeError } = require(path.join(__dirname, '..', 'index.js'));
const { fakeWx, fakeServers, BRIDGE, API } = require('../test-support/fake-wx.js');

function client(wx, extra = {}) {
  return createClient({ baseUrl: BRIDGE, tenant: 'acme', miniProgram: 'shop', wx, ...extra });
}

const to = (wx, route) => wx.requests.filter((r) => r.url.endsWith('/miniprograms/shop/' + route) ||
  r.url.endsWith('/miniprograms/ops/' + route));

test('WeChat getPhoneNumber with a code: the bridge exchanges it, with the session as bearer', async () => {
  const wx = fakeWx();
  const c = client(wx);
  // The button's event as the page handler receives it; the SDK takes its detail.
  const event = { type: 'getphonenumber', detail: { errMsg: 'getPhoneNumber:ok', code: 'phone-code-1', encryptedData: 'ZW5j', iv: 'aXY=' } };
  const r = await c.getPhoneNumber(event);
  assert.deepEqual(r, { userId: 100, phoneNumber: '+86 13800138000', purePhoneNumber: '13800138000', countryCode: '86' });
  const [sent] = to(wx, 'phone');
  assert.equal(sent.url, BRIDGE + '/api/v1/tenants/acme/miniprograms/shop/phone');
  assert.equal(sent.method, 'POST');
  assert.deepEqual(sent.data, { code: 'phone-code-1' });
  assert.equal(sent.header.Authorization, 'Bearer ' + c.getToken());
  assert.equal(to(wx, 'decrypt').length, 0, 'the code wins over encryptedData');
  assert.equal(wx.calls.login, 1, 'logged in first');
  // The detail itself works as well.
  await c.getPhoneNumber({ errMsg: 'getPhoneNumber:ok', code: 'phone-code-2' });
  assert.deepEqual(wx.servers.phoneCodes, ['phone-code-1', 'phone-code-2']);
});

test('WeChat getPhoneNumber without a code (older base library): encryptedData + iv are decrypted by the bridge', async () => {
  const wx = fakeWx();
  const c = client(wx);
  const r = await c.getPhoneNumber({ detail: { errMsg: 'getPhoneNumber:ok', encryptedData: 'ZW5jcnlwdGVk', iv: 'aXZpdml2aXY=' } });
  assert.deepEqual(r, { userId: 100, phoneNumber: '13900139000', purePhoneNumber: '13900139000', countryCode: '86' });
  const [sent] = to(wx, 'decrypt');
  assert.deepEqual(sent.data, { encrypted_data: 'ZW5jcnlwdGVk', iv: 'aXZpdml2aXY=', kind: 'phone' });
  assert.equal(sent.header.Authorization, 'Bearer ' + c.getToken());
});

test('WeCom: wx.qy.getMobile data goes to decrypt; a bare code is refused before any request', async () => {
  const wx = fakeWx({ platform: 'wecom' });
  const c = client(wx, { miniProgram: 'ops' });
  const r = await c.getPhoneNumber({ errMsg: 'qy__getMobile:ok', encryptedData: 'bW9iaWxl', iv: 'aXY=' });
  assert.equal(r.purePhoneNumber, '13900139000');
  assert.equal(wx.calls.qyLogin, 1);
  assert.deepEqual(to(wx, 'decrypt')[0].data, { encrypted_data: 'bW9iaWxl', iv: 'aXY=', kind: 'phone' });

  const before = wx.requests.length;
  await assert.rejects(c.getPhoneNumber({ errMsg: 'getPhoneNumber:ok', code: 'c1' }), (e) => {
    assert.equal(e.code, 'bad_argument');
    assert.match(e.message, /WeCom has no phone-number code exchange: pass the encryptedData and iv of wx\.qy\.getMobile/);
    return true;
  });
  assert.equal(wx.requests.length, before);
});

test('getPhoneNumber: a user who declines, a failed button and bad input reject without a request', async () => {
  const wx = fakeWx();
  const c = client(wx);
  await assert.rejects(c.getPhoneNumber({ detail: { errMsg: 'getPhoneNumber:fail user deny' } }), (e) => {
    assert.ok(e instanceof WxbridgeError);
    assert.equal(e.code, 'user_denied');
    assert.equal(e.errMsg, 'getPhoneNumber:fail user deny');
    return true;
  });
  await assert.rejects(c.getPhoneNumber({ errMsg: 'getPhoneNumber:fail no permission' }), { code: 'wx_api_failed' });
  await assert.rejects(c.getPhoneNumber(null), { code: 'bad_argument' });
  await assert.rejects(c.getPhoneNumber({ errMsg: 'getPhoneNumber:ok' }), (e) => {
    assert.equal(e.code, 'bad_argument');
    assert.match(e.message, /needs the event's `code`, or its `encryptedData` and `iv`/);
    return true;
  });
  await assert.rejects(c.getPhoneNumber({ encryptedData: 'x', iv: ' ' }), { code: 'bad_argument' });
  assert.equal(wx.requests.length, 0);
});

test('decryptUserInfo: kind user_info, camelCase result; bad input is refused', async () => {
  const wx = fakeWx();
  const c = client(wx);
  const profile = { errMsg: 'getUserProfile:ok', userInfo: { nickName: 'Nick' }, encryptedData: 'dXNlcg==', iv: 'aXY=' };
  const r = await c.decryptUserInfo(profile);
  assert.deepEqual(r, {
    userId: 100, openid: 'oshop-openid', unionid: 'union-1', nickname: 'Nick',
    avatar: 'https://img.example.com/a.png', userid: null, mergedUsers: [7]
  });
  assert.deepEqual(to(wx, 'decrypt')[0].data, { encrypted_data: 'dXNlcg==', iv: 'aXY=', kind: 'user_info' });
  const n = wx.requests.length;
  await assert.rejects(c.decryptUserInfo({ encryptedData: 'dXNlcg==' }), (e) => {
    assert.equal(e.code, 'bad_argument');
    assert.match(e.message, /user info needs \{ encryptedData, iv \}/);
    return true;
  });
  await assert.rejects(c.decryptUserInfo(), { code: 'bad_argument' });
  assert.equal(wx.requests.length, n);
});

test('helpers log in again once on an expired session, like request()', async () => {
  const wx = fakeWx();
  const c = client(wx);
  await c.login();
  wx.servers.expire(c.getToken());
  const r = await c.getPhoneNumber({ code: 'pc' });
  assert.equal(r.purePhoneNumber, '13800138000');
  assert.equal(wx.calls.login, 2);
  assert.equal(to(wx, 'phone').length, 2);
  assert.deepEqual(wx.servers.phoneCodes, ['pc'], 'the refused call never reached the code exchange');
});

test('decrypt: a stale session_key logs in again once (fresh key on the bridge) and retries; twice stale rejects', async () => {
  const servers = fakeServers();
  let staleAnswers = 1;
  servers.override = (req) => {
    if (req.url.endsWith('/decrypt') && staleAnswers > 0) {
      staleAnswers -= 1;
      return { statusCode: 409, data: { error: { code: 'session_key_stale', message: 'MP003 session_key changed' } } };
    }
    return undefined;
  };
  const wx = fakeWx({ servers });
  const c = client(wx);
  await c.login();
  const first = c.getToken();
  const r = await c.decryptUserInfo({ encryptedData: 'ZGF0YQ==', iv: 'aXY=' });
  assert.equal(r.nickname, 'Nick');
  assert.equal(wx.calls.login, 2);
  assert.notEqual(c.getToken(), first);
  const sent = to(wx, 'decrypt');
  assert.equal(sent.length, 2);
  assert.equal(sent[1].header.Authorization, 'Bearer ' + c.getToken());

  staleAnswers = 2;
  await assert.rejects(c.getPhoneNumber({ encryptedData: 'ZGF0YQ==', iv: 'aXY=' }), (e) => {
    assert.equal(e.code, 'session_key_stale');
    assert.equal(e.status, 409);
    assert.match(e.message, /phone number failed \(409 session_key_stale\): MP003 session_key changed/);
    return true;
  });
  assert.equal(wx.calls.login, 3, 'one more login, not a loop');
  assert.equal(to(wx, 'decrypt').length, 4);
});

test('a session of another mini program is refused with the bridge code, no new login', async () => {
  const servers = fakeServers();
  const wx = fakeWx({ servers });
  const shop = client(wx, { miniProgram: 'shop' });
  await shop.login();
  // A client for `ops` pointed at the shop's storage key would send the shop's token: refused by createClient,
  // so forge the situation at the bridge instead.
  servers.override = (req) => req.url.endsWith('/phone')
    ? { statusCode: 403, data: { error: { code: 'session_provider_mismatch', message: 'MP006 the session came through shop' } } }
    : undefined;
  await assert.rejects(shop.getPhoneNumber({ code: 'x' }), { code: 'session_provider_mismatch', status: 403 });
  assert.equal(wx.calls.login, 1);
});

test('logout revokes on the bridge with the bearer token and forgets it; the next call logs in again', async () => {
  const wx = fakeWx();
  const c = client(wx);
  await c.login();
  const token = c.getToken();
  const r = await c.logout();
  assert.deepEqual(r, { revokedOnServer: true });
  const out = wx.requests.at(-1);
  assert.equal(out.url, BRIDGE + '/auth/acme/logout');
  assert.equal(out.method, 'GET');
  assert.equal(out.header.Authorization, 'Bearer ' + token);
  assert.equal(wx.servers.tokens.get(token).state, 'revoked');
  assert.equal(c.getToken(), null);
  assert.equal(c.user, null);
  assert.equal(wx.getStorageSync('wxbridge:session:acme:shop'), '');
  assert.equal(client(wx).getToken(), null, 'a new client finds nothing either');

  await c.request({ url: API + '/x' });
  assert.equal(wx.calls.login, 2);
  assert.notEqual(c.getToken(), token);
});

test('logout with no session asks nothing; with the bridge unreachable it still forgets the token', async () => {
  const wx = fakeWx();
  const c = client(wx);
  assert.deepEqual(await c.logout(), { revokedOnServer: false });
  assert.equal(wx.requests.length, 0);

  await c.login();
  wx.servers.override = (req) => req.url.includes('/logout') ? { fail: 'request:fail timeout' } : undefined;
  assert.deepEqual(await c.logout(), { revokedOnServer: false });
  assert.equal(c.getToken(), null);
  assert.equal(wx.getStorageSync('wxbridge:session:acme:shop'), '');
});

test('logout during a login waits for it, then revokes that session', async () => {
  const wx = fakeWx();
  const c = client(wx);
  const pending = c.login();
  const out = c.logout();
  await pending;
  assert.deepEqual(await out, { revokedOnServer: true });
  assert.equal(c.getToken(), null);
  assert.equal(wx.servers.logouts.length, 1);
  assert.equal(wx.servers.tokens.get(wx.servers.logouts[0]).state, 'revoked');
});
