// request(): the bearer token on every call, logging in first, logging in again once on a session the
// bridge no longer accepts, and one shared login for concurrent calls.   node --test sdk/miniprogram/test/
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const { createClient, WxbridgeError } = require(path.join(__dirname, '..', 'index.js'));
const { fakeWx, fakeServers, BRIDGE, API } = require('../test-support/fake-wx.js');

function client(wx, extra = {}) {
  return createClient({ baseUrl: BRIDGE, tenant: 'acme', miniProgram: 'shop', wx, ...extra });
}

const apiRequests = (wx) => wx.requests.filter((r) => r.url.startsWith(API));
const loginRequests = (wx) => wx.requests.filter((r) => r.url.endsWith('/login'));

/** Every error and its JSON must leave the token out. */
function assertNoToken(e, ...tokens) {
  for (const t of tokens.filter(Boolean)) {
    assert.ok(!String(e.message).includes(t), 'token in message');
    assert.ok(!String(e.stack).includes(t), 'token in stack');
    assert.ok(!JSON.stringify(e).includes(t), 'token in JSON');
  }
}

test('logs in first when there is no token, then sends it as Authorization: Bearer', async () => {
  const wx = fakeWx();
  const c = client(wx, { apiBaseUrl: API + '/' });
  const res = await c.request({
    url: '/orders?page=2',
    method: 'post',
    data: { sku: 'A1' },
    header: { 'X-Trace': 't1', authorization: 'Bearer someone-elses' }
  });
  assert.equal(res.statusCode, 200);
  assert.deepEqual(res.data, { path: '/orders', query: '?page=2', method: 'POST', got: { sku: 'A1' } });
  assert.equal(loginRequests(wx).length, 1);
  const [sent] = apiRequests(wx);
  assert.equal(sent.url, API + '/orders?page=2', 'a relative url is resolved against apiBaseUrl');
  assert.equal(sent.header.Authorization, 'Bearer ' + c.getToken());
  assert.equal(sent.header.authorization, undefined, 'the caller cannot send a second Authorization');
  assert.equal(sent.header['X-Trace'], 't1');
  assert.ok(wx.requests.indexOf(loginRequests(wx)[0]) < wx.requests.indexOf(sent), 'login before the call');

  // Later calls reuse the token; relative urls default to baseUrl (the bridge) when apiBaseUrl is unset.
  await c.request({ url: API + '/again' });
  assert.equal(loginRequests(wx).length, 1);
  const d = client(fakeWx());
  await assert.rejects(d.request({ url: 'nowhere' }), (e) => {
    assert.equal(e.code, 'not_found');
    assert.equal(e.status, 404);
    return true;
  });
});

for (const how of ['expire', 'revoke', 'unknown']) {
  test(`a 401 session_${how === 'unknown' ? 'unknown' : how + 'd'} logs in again once and retries once`, async () => {
    const wx = fakeWx();
    const c = client(wx);
    await c.login();
    const old = c.getToken();
    if (how === 'unknown') wx.servers.tokens.delete(old);
    else wx.servers[how](old);

    const res = await c.request({ url: API + '/orders', method: 'PUT', data: { n: 1 } });

    assert.equal(res.statusCode, 200);
    assert.deepEqual(res.data.got, { n: 1 }, 'the retry sends the same body');
    assert.equal(wx.calls.login, 2);
    const calls = apiRequests(wx);
    assert.equal(calls.length, 2);
    assert.equal(calls[0].header.Authorization, 'Bearer ' + old);
    const fresh = c.getToken();
    assert.notEqual(fresh, old);
    assert.equal(calls[1].header.Authorization, 'Bearer ' + fresh);
    assert.equal(calls[1].method, 'PUT');
    assert.equal(wx.getStorageSync('wxbridge:session:acme:shop').token, fresh, 'the new token is stored');
  });
}

test('a second 401 rejects: no loop, one extra login only', async () => {
  const servers = fakeServers();
  // The backend refuses every token (say it checks them against another tenant).
  servers.override = (req) => req.url.startsWith(API)
    ? { statusCode: 401, data: { error: { code: 'session_expired', message: 'session expired' } } }
    : undefined;
  const wx = fakeWx({ servers });
  const c = client(wx);
  await assert.rejects(c.request({ url: API + '/orders' }), (e) => {
    assert.ok(e instanceof WxbridgeError);
    assert.equal(e.code, 'session_expired');
    assert.equal(e.status, 401);
    assert.match(e.message, /GET https:\/\/api\.example\.com\/orders failed \(401 session_expired\): session expired/);
    assertNoToken(e, c.getToken(), ...[...servers.tokens.keys()]);
    return true;
  });
  assert.equal(wx.calls.login, 2, 'the first login and one more');
  assert.equal(apiRequests(wx).length, 2, 'the call and one retry');
});

test('a 401 that is not about the session (or a 403) rejects without logging in again', async () => {
  const servers = fakeServers();
  let answer;
  servers.override = (req) => req.url.startsWith(API) ? answer : undefined;
  const wx = fakeWx({ servers });
  const c = client(wx);

  answer = { statusCode: 401, data: { error: { code: 'user_not_active', message: 'user 5 is disabled' } } };
  await assert.rejects(c.request({ url: API + '/a' }), { code: 'user_not_active', status: 401 });
  answer = { statusCode: 403, data: { code: 'session_provider_mismatch', message: 'WeCom only' } };
  await assert.rejects(c.request({ url: API + '/b' }), (e) => {
    assert.equal(e.code, 'session_provider_mismatch', 'a flat {code, message} body is understood too');
    assert.match(e.message, /\(403 session_provider_mismatch\): WeCom only/);
    return true;
  });
  answer = { statusCode: 401, data: 'Unauthorized' };
  await assert.rejects(c.request({ url: API + '/c' }), { code: 'http_401', status: 401 });
  assert.equal(wx.calls.login, 1);
  assert.equal(apiRequests(wx).length, 3);
});

test('concurrent requests without a token share one login', async () => {
  const wx = fakeWx();
  const c = client(wx);
  const results = await Promise.all([1, 2, 3, 4, 5].map((i) => c.request({ url: API + '/item/' + i })));
  assert.equal(results.length, 5);
  assert.equal(wx.calls.login, 1);
  assert.equal(loginRequests(wx).length, 1);
  const token = c.getToken();
  assert.ok(apiRequests(wx).every((r) => r.header.Authorization === 'Bearer ' + token));
  // login() during a login joins it too.
  const wx2 = fakeWx();
  const c2 = client(wx2);
  const [a, b] = await Promise.all([c2.login(), c2.login(), c2.request({ url: API + '/x' })]);
  assert.equal(a, b);
  assert.equal(wx2.calls.login, 1);
});

test('concurrent requests refused for the same expired session share one new login', async () => {
  const wx = fakeWx();
  const c = client(wx);
  await c.login();
  const old = c.getToken();
  wx.servers.expire(old);
  const results = await Promise.all([1, 2, 3, 4].map((i) => c.request({ url: API + '/item/' + i })));
  assert.ok(results.every((r) => r.statusCode === 200));
  assert.equal(wx.calls.login, 2, 'one login at start, one shared new login');
  const fresh = c.getToken();
  const calls = apiRequests(wx);
  assert.equal(calls.filter((r) => r.header.Authorization === 'Bearer ' + old).length, 4);
  assert.equal(calls.filter((r) => r.header.Authorization === 'Bearer ' + fresh).length, 4);
});

test('a 401 for the old token arriving after another call already logged in again uses the new token', async () => {
  const wx = fakeWx();
  const c = client(wx);
  await c.login();
  const old = c.getToken();
  wx.servers.expire(old);
  let open;
  const gate = new Promise((resolve) => { open = resolve; });
  // The slow call's refusal is held back until the fast call has logged in again and finished.
  wx.servers.override = (req) => req.url.endsWith('/slow') && req.header.Authorization === 'Bearer ' + old
    ? { ...wx.servers.refusal(req), after: gate }
    : undefined;
  const slow = c.request({ url: API + '/slow' });
  await c.request({ url: API + '/fast' });
  const fresh = c.getToken();
  assert.notEqual(fresh, old);
  open();
  const res = await slow;
  assert.equal(res.statusCode, 200);
  assert.equal(wx.calls.login, 2, 'the late refusal does not log in a third time');
  assert.equal(c.getToken(), fresh);
  assert.equal(apiRequests(wx).at(-1).header.Authorization, 'Bearer ' + fresh);
});

test('a failed new login after a 401 rejects with the login error', async () => {
  const wx = fakeWx();
  const c = client(wx);
  await c.login();
  wx.servers.expire(c.getToken());
  const realLogin = wx.login;
  wx.login = (o) => setImmediate(() => o.fail({ errMsg: 'login:fail network' }));
  await assert.rejects(c.request({ url: API + '/x' }), { code: 'wx_login_failed', errMsg: 'login:fail network' });
  assert.equal(c.getToken(), null, 'the refused token is forgotten');
  wx.login = realLogin;
  const res = await c.request({ url: API + '/x' });
  assert.equal(res.statusCode, 200);
});

test('network failures and non-JSON error bodies reject with WxbridgeError, never the token', async () => {
  const servers = fakeServers();
  let answer;
  servers.override = (req) => req.url.startsWith(API) ? answer : undefined;
  const wx = fakeWx({ servers });
  const c = client(wx);
  await c.login();
  const token = c.getToken();

  answer = { fail: 'request:fail timeout' };
  await assert.rejects(c.request({ url: API + '/slow?secret=1', timeout: 5 }), (e) => {
    assert.equal(e.code, 'network_error');
    assert.equal(e.status, 0);
    assert.equal(e.errMsg, 'request:fail timeout');
    assert.equal(e.message, 'wxbridge: GET https://api.example.com/slow failed: request:fail timeout');
    assertNoToken(e, token);
    return true;
  });

  answer = { statusCode: 500, data: 'Internal Server Error\n' };
  await assert.rejects(c.request({ url: API + '/boom' }), (e) => {
    assert.equal(e.code, 'http_500');
    assert.equal(e.status, 500);
    assert.equal(e.data, 'Internal Server Error\n');
    assert.match(e.message, /GET https:\/\/api\.example\.com\/boom failed \(500\): HTTP 500: Internal Server Error$/);
    assertNoToken(e, token);
    return true;
  });

  answer = { statusCode: 503, data: '<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>' };
  await assert.rejects(c.request({ url: API + '/busy' }), (e) => {
    assert.equal(e.code, 'http_503');
    assert.match(e.message, /HTTP 503: 503 Service Temporarily Unavailable$/);
    return true;
  });
  assert.equal(wx.calls.login, 1, 'none of these is a reason to log in again');

  await assert.rejects(c.request({}), { code: 'bad_argument' });
  await assert.rejects(c.request(), { code: 'bad_argument' });
});

test('the token stays out of errors even when the server echoes the request into its error body', async () => {
  const servers = fakeServers();
  servers.override = (req) => req.url.startsWith(API)
    ? {
      statusCode: 400,
      data: {
        error: { code: 'bad_request', message: 'rejected header ' + req.header.Authorization },
        echo: { headers: { Authorization: req.header.Authorization } }
      }
    }
    : undefined;
  const wx = fakeWx({ servers });
  const c = client(wx);
  await assert.rejects(c.request({ url: API + '/x' }), (e) => {
    const token = c.getToken();
    assertNoToken(e, token);
    assert.equal(e.code, 'bad_request');
    assert.match(e.message, /rejected header Bearer \[redacted\]$/);
    assert.deepEqual(e.data.echo, { headers: { Authorization: 'Bearer [redacted]' } });
    return true;
  });
});
