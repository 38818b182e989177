// Login, token storage, platform detection and client options of @wxbridge/miniprogram, against a fake
// `wx` (test-support/fake-wx.js):   node --test sdk/miniprogram/test/
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { createClient, WxbridgeError } = require(path.join(__dirname, '..', 'index.js'));
const defaultExport = require(path.join(__dirname, '..', 'index.js')).default;
const { fakeWx, fakeServers, BRIDGE, API } = require('../test-support/fake-wx.js');

const OPTS = { baseUrl: BRIDGE + '/', tenant: 'acme', miniProgram: 'shop' };

function client(wx, extra = {}) {
  return createClient({ ...OPTS, wx, ...extra });
}

const bridgeRequests = (wx) => wx.requests.filter((r) => r.url.startsWith(BRIDGE));

test('WeChat: wx.login code -> bridge login (no API key, no bearer) -> token kept in storage', async () => {
  const wx = fakeWx();
  const c = client(wx);
  assert.equal(c.platform, 'wechat');
  assert.equal(c.getToken(), null);
  assert.equal(c.user, null);

  const r = await c.login();

  assert.equal(wx.calls.login, 1);
  assert.equal(wx.requests.length, 1);
  const req = wx.requests[0];
  assert.equal(req.url, BRIDGE + '/api/v1/tenants/acme/miniprograms/shop/login');
  assert.equal(req.method, 'POST');
  assert.match(req.data.code, /^wechat-code-/);
  assert.equal(req.header.Authorization, undefined);
  assert.equal(req.header['content-type'], 'application/json');

  const token = c.getToken();
  assert.match(token, /^wxs_[0-9a-f]{64}$/);
  assert.equal(wx.servers.tokens.get(token).key, 'shop');
  assert.deepEqual(c.user, { id: 100, name: 'WeChat user', status: 'active', avatar: null });
  assert.equal(r.provider, 'wechat_mini_program');
  assert.equal(r.app, 'shop');
  assert.equal(r.openid, 'oshop-openid');
  assert.equal(r.createdUser, true);
  assert.deepEqual(r.mergedUsers, []);
  assert.equal(r.expiresAtMs, 4102444800000);
  assert.ok(!JSON.stringify(r).includes(token), 'the login result does not carry the token');
  const stored = wx.getStorageSync('wxbridge:session:acme:shop');
  assert.equal(stored.token, token);
  assert.equal(stored.expiresAtMs, 4102444800000);
});

test('WeCom (auto: environment wxwork): wx.qy.login, never wx.login', async () => {
  const wx = fakeWx({ platform: 'wecom' });
  const c = client(wx, { miniProgram: 'ops' });
  assert.equal(c.platform, 'wecom');
  const r = await c.login();
  assert.equal(wx.calls.qyLogin, 1);
  assert.equal(wx.calls.login, 0);
  assert.match(wx.requests[0].data.code, /^wecom-code-/);
  assert.equal(wx.requests[0].url, BRIDGE + '/api/v1/tenants/acme/miniprograms/ops/login');
  assert.equal(r.provider, 'wecom_mini_program');
  assert.equal(r.userid, 'zhangsan');
  assert.equal(c.user.name, 'Zhang San');
  assert.match(c.getToken(), /^wxs_/);
});

test('auto detects WeCom from wx.qy when the environment is not reported; an explicit platform wins', async () => {
  const noEnv = fakeWx({ platform: 'wecom', env: null });
  delete noEnv.getSystemInfoSync;
  assert.equal(client(noEnv).platform, 'wecom');

  const wechatInWecom = fakeWx({ platform: 'wecom' });
  const c = client(wechatInWecom, { platform: 'wechat' });
  assert.equal(c.platform, 'wechat');
  await c.login();
  assert.equal(wechatInWecom.calls.login, 1);
  assert.equal(wechatInWecom.calls.qyLogin, 0);
  assert.match(wechatInWecom.requests[0].data.code, /^wechat-code-/);

  const forcedWecom = fakeWx();
  const f = client(forcedWecom, { platform: 'wecom' });
  await assert.rejects(f.login(), (e) => {
    assert.ok(e instanceof WxbridgeError);
    assert.equal(e.code, 'wx_login_failed');
    assert.match(e.message, /wx\.qy\.login is missing/);
    return true;
  });
  assert.equal(forcedWecom.requests.length, 0);
});

test('a kept token is reused by a new client (next app launch) and sent without logging in', async () => {
  const wx = fakeWx();
  const first = client(wx);
  await first.login();
  const token = first.getToken();

  const second = client(wx); // same storage, as after a restart
  assert.equal(second.getToken(), token);
  assert.equal(second.user.id, 100);
  const res = await second.request({ url: API + '/orders' });
  assert.equal(res.statusCode, 200);
  assert.equal(wx.calls.login, 1, 'no second login');
  assert.equal(wx.requests.at(-1).header.Authorization, 'Bearer ' + token);
});

test('an expired or malformed kept session counts as none: the next request logs in first', async () => {
  const wx = fakeWx();
  wx.setStorageSync('wxbridge:session:acme:shop', { token: 'wxs_' + 'f'.repeat(64), expiresAtMs: 1000 });
  const c = client(wx, { now: () => 2000 });
  assert.equal(c.getToken(), null);
  assert.equal(wx.getStorageSync('wxbridge:session:acme:shop'), '', 'the expired session is removed');
  await c.request({ url: API + '/x' });
  assert.equal(wx.calls.login, 1);

  const wx2 = fakeWx();
  wx2.setStorageSync('wxbridge:session:acme:shop', { token: 'not-a-token', expiresAtMs: 9e15 });
  const c2 = client(wx2);
  assert.equal(c2.getToken(), null);
  await c2.request({ url: API + '/x' });
  assert.equal(wx2.calls.login, 1);
  assert.match(wx2.requests.at(-1).header.Authorization, /^Bearer wxs_/);
});

test('wx.login failure surfaces as a WxbridgeError and asks the bridge nothing', async () => {
  const wx = fakeWx({ loginFail: 'login:fail timeout' });
  const c = client(wx);
  await assert.rejects(c.login(), (e) => {
    assert.ok(e instanceof WxbridgeError);
    assert.ok(e instanceof Error);
    assert.equal(e.name, 'WxbridgeError');
    assert.equal(e.code, 'wx_login_failed');
    assert.equal(e.status, 0);
    assert.equal(e.errMsg, 'login:fail timeout');
    assert.match(e.message, /^wxbridge: wx\.login failed: login:fail timeout$/);
    return true;
  });
  assert.equal(wx.requests.length, 0);
  assert.equal(c.getToken(), null);
  // request() reports the same failure instead of sending without a token.
  await assert.rejects(c.request({ url: API + '/x' }), { code: 'wx_login_failed' });
  assert.equal(wx.requests.length, 0);

  const qy = fakeWx({ platform: 'wecom', loginFail: 'qy__login:fail not in WeCom' });
  await assert.rejects(client(qy).login(), { code: 'wx_login_failed', errMsg: 'qy__login:fail not in WeCom' });
});

test('a refused login keeps the bridge code and says which login made the code', async () => {
  const servers = fakeServers();
  servers.override = (req) => req.url.endsWith('/login')
    ? { statusCode: 400, data: { error: { code: 'invalid_code', message: 'MP001 invalid code (40029)' } } }
    : undefined;
  const wx = fakeWx({ servers });
  await assert.rejects(client(wx).login(), (e) => {
    assert.equal(e.code, 'invalid_code');
    assert.equal(e.status, 400);
    assert.match(e.message, /bridge login failed \(400 invalid_code\): MP001 invalid code \(40029\)/);
    assert.match(e.message, /the code came from wx\.login.*`shop`.*wechat\.mini_programs/);
    assert.deepEqual(e.data, { error: { code: 'invalid_code', message: 'MP001 invalid code (40029)' } });
    return true;
  });
});

test('non-JSON error bodies (a proxy page) and a 200 without a token become clear errors', async () => {
  const servers = fakeServers();
  servers.override = () => ({
    statusCode: 502,
    data: '<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad Gateway</h1><hr>nginx</body></html>'
  });
  await assert.rejects(client(fakeWx({ servers })).login(), (e) => {
    assert.equal(e.code, 'http_502');
    assert.equal(e.status, 502);
    assert.match(e.message, /bridge login failed \(502\): HTTP 502: 502 Bad Gateway 502 Bad Gateway nginx$/);
    return true;
  });

  servers.override = () => ({ statusCode: 500, data: '' });
  await assert.rejects(client(fakeWx({ servers })).login(), (e) => {
    assert.equal(e.code, 'http_500');
    assert.match(e.message, /HTTP 500 with a body that is not a wxbridge error/);
    return true;
  });

  servers.override = () => ({ statusCode: 200, data: '<html>captive portal</html>' });
  const wx = fakeWx({ servers });
  const c = client(wx);
  await assert.rejects(c.login(), (e) => {
    assert.equal(e.code, 'bad_response');
    assert.match(e.message, /without a session token: is baseUrl the bridge\?/);
    return true;
  });
  assert.equal(c.getToken(), null);
  assert.equal(wx.storage.size, 0, 'nothing stored');
});

test('two mini programs of one tenant keep separate tokens in one storage', async () => {
  const wx = fakeWx();
  const shop = client(wx, { miniProgram: 'shop' });
  const crm = client(wx, { miniProgram: 'crm' });
  assert.notEqual(shop.storageKey, crm.storageKey);
  await shop.login();
  assert.equal(crm.getToken(), null, 'the other mini program is not logged in by this one');
  await crm.login();
  const a = shop.getToken();
  const b = crm.getToken();
  assert.notEqual(a, b);
  assert.equal(wx.servers.tokens.get(a).key, 'shop');
  assert.equal(wx.servers.tokens.get(b).key, 'crm');
  assert.equal(wx.getStorageSync('wxbridge:session:acme:shop').token, a);
  assert.equal(wx.getStorageSync('wxbridge:session:acme:crm').token, b);

  await shop.request({ url: API + '/a' });
  assert.equal(wx.requests.at(-1).header.Authorization, 'Bearer ' + a);
  await crm.request({ url: API + '/b' });
  assert.equal(wx.requests.at(-1).header.Authorization, 'Bearer ' + b);

  await shop.logout();
  assert.equal(shop.getToken(), null);
  assert.equal(crm.getToken(), b, 'logging one out leaves the other');
  assert.deepEqual(wx.servers.logins.map((l) => l.key), ['shop', 'crm']);
});

test('two clients of one mini program (app.js and a page) see each other\'s new login through storage', async () => {
  const wx = fakeWx();
  const app = client(wx);
  const page = client(wx);
  await app.login();
  const old = app.getToken();
  assert.equal(page.getToken(), old);
  wx.servers.expire(old);
  await app.request({ url: API + '/a' }); // 401, logs in again
  const fresh = app.getToken();
  assert.notEqual(fresh, old);
  assert.equal(page.getToken(), fresh);
  await page.request({ url: API + '/b' });
  assert.equal(wx.calls.login, 2, 'the page uses the app\'s new session instead of logging in itself');
  assert.equal(wx.requests.at(-1).header.Authorization, 'Bearer ' + fresh);
});

test('a storage that refuses writes keeps the session in memory for this run', async () => {
  const wx = fakeWx();
  wx.setStorageSync = () => { throw new Error('setStorageSync:fail exceed storage max size 10Mb'); };
  const c = client(wx);
  await c.login();
  assert.match(c.getToken(), /^wxs_/);
  await c.request({ url: API + '/a' });
  await c.request({ url: API + '/b' });
  assert.equal(wx.calls.login, 1);
  await c.logout();
  assert.equal(c.getToken(), null);
});

test('createClient refuses bad options with a message naming the problem', () => {
  const wx = fakeWx();
  const bad = (o, re) => assert.throws(() => createClient(o), (e) => {
    assert.ok(e instanceof WxbridgeError);
    assert.equal(e.code, 'bad_argument');
    assert.match(e.message, re);
    return true;
  });
  bad(undefined, /needs \{ baseUrl, tenant, miniProgram \}/);
  bad({ ...OPTS, wx, tenant: '' }, /`tenant`/);
  bad({ ...OPTS, wx, miniProgram: undefined }, /`miniProgram`/);
  bad({ ...OPTS, wx, baseUrl: 'bridge.example.com' }, /baseUrl must start with https:\/\//);
  bad({ ...OPTS, wx, platform: 'alipay' }, /platform must be 'wechat', 'wecom' or 'auto', got `alipay`/);
  bad({ ...OPTS, wx, storageKey: '' }, /storageKey must be a non-empty string/);
  bad({ ...OPTS, wx, apiBaseUrl: '/api' }, /apiBaseUrl must start with https:\/\//);
  bad({ ...OPTS }, /no wx object/);
  // A storage key already holding another mini program's session is refused, not shared.
  createClient({ ...OPTS, wx, miniProgram: 'one', storageKey: 'custom:key' });
  createClient({ ...OPTS, wx, miniProgram: 'one', storageKey: 'custom:key' }); // the same mini program again is fine
  bad({ ...OPTS, wx, miniProgram: 'two', storageKey: 'custom:key' },
    /storageKey `custom:key` is already used by the client of tenant `acme`, mini program `one`/);
});

test('the default export is the module (for `import wxbridge from`)', () => {
  assert.equal(defaultExport.createClient, createClient);
  assert.equal(defaultExport.WxbridgeError, WxbridgeError);
});

test('tenant and mini-program keys are path-encoded', async () => {
  const wx = fakeWx();
  const c = createClient({ baseUrl: BRIDGE, tenant: 'a b', miniProgram: 'x/y', wx });
  await c.login();
  assert.equal(wx.requests[0].url, BRIDGE + '/api/v1/tenants/a%20b/miniprograms/x%2Fy/login');
  assert.equal(bridgeRequests(wx).length, 1);
});
