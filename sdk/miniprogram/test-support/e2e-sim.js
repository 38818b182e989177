// End-to-end check of the SDK against the real bridge and the simulator (not part of `node --test
// sdk/miniprogram/test/`, which needs no binary):
//
//   cargo build -p wxbridge && node sdk/miniprogram/test-support/e2e-sim.js [path/to/wxbridge]
//
// Starts `wxbridge sim` on the example fixture (which writes a bridge config) and `wxbridge serve` on it,
// both on 127.0.0.1 in a temporary directory, then drives the SDK with a `wx` whose login asks the
// simulator for a real code (`/_sim/miniprogram/code`) and whose request is fetch(). Stops both at the end.
'use strict';

const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const { createClient } = require(path.join(__dirname, '..', 'index.js'));

const ROOT = path.join(__dirname, '..', '..', '..');
const BIN = process.argv[2] || path.join(ROOT, 'target', 'debug', 'wxbridge');
const FIXTURE = path.join(ROOT, 'crates', 'wx-sim', 'fixtures', 'example.toml');
// From the fixture: the WeChat mini program `shop`, its user's openid, the WeCom mini program `portal`.
const SHOP_APPID = 'wx0000000000000002';
const SHOP_OPENID = 'oMP00000000000000000000001';
const PORTAL_APPID = 'wx00000000000000a1';
const PORTAL_USERID = 'ZhangSan';

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Spawn, keeping output for the failure message; resolves with the child once `ready(output)` holds. */
function start(args, cwd, ready) {
  return new Promise((resolve, reject) => {
    const child = spawn(BIN, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const timer = setTimeout(() => reject(new Error(`wxbridge ${args[0]} did not start in 60 s:\n${out}`)), 60000);
    const check = (chunk) => {
      out += chunk;
      if (ready(out)) {
        clearTimeout(timer);
        resolve({ child, output: () => out });
      }
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    child.once('error', (e) => { clearTimeout(timer); reject(e); });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`wxbridge ${args[0]} exited (${code}):\n${out}`)); });
  });
}

async function post(url, body) {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const b = await r.json().catch(() => null);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${JSON.stringify(b)}`);
  return b;
}

/** A `wx` backed by the simulator (codes) and fetch (requests), with storage in a Map. */
function simWx(sim, { appid, openid, userid }) {
  const store = new Map();
  const mint = (o) => post(sim + '/_sim/miniprogram/code', userid ? { appid, userid } : { appid, openid })
    .then((b) => o.success({ errMsg: 'login:ok', code: b.code }), (e) => o.fail({ errMsg: 'login:fail ' + e.message }));
  const wx = {
    logins: 0,
    login(o) { wx.logins += 1; mint(o); },
    getSystemInfoSync: () => ({ environment: userid ? 'wxwork' : undefined }),
    getStorageSync: (k) => (store.has(k) ? JSON.parse(store.get(k)) : ''),
    setStorageSync: (k, v) => store.set(k, JSON.stringify(v)),
    removeStorageSync: (k) => store.delete(k),
    request(o) {
      const init = { method: o.method, headers: o.header };
      if (o.data !== undefined && o.method !== 'GET') init.body = JSON.stringify(o.data);
      fetch(o.url, init).then(async (r) => {
        const text = await r.text();
        let data = text;
        if ((o.dataType || 'json') === 'json') { try { data = JSON.parse(text); } catch (e) { /* text */ } }
        o.success({ statusCode: r.status, data, header: Object.fromEntries(r.headers) });
      }, (e) => o.fail({ errMsg: 'request:fail ' + e.message }));
    }
  };
  if (userid) wx.qy = { login(o) { wx.logins += 1; mint(o); } };
  return wx;
}

async function run(sim, bridge) {
  // WeChat mini program: login, a bearer request (/auth/{tenant}/me stands in for a business backend).
  const wx = simWx(sim, { appid: SHOP_APPID, openid: SHOP_OPENID });
  const shop = createClient({ baseUrl: bridge, tenant: 'demo', miniProgram: 'shop', wx });
  const login = await shop.login();
  assert.equal(shop.platform, 'wechat');
  assert.equal(login.provider, 'wechat_mini_program');
  assert.equal(login.openid, SHOP_OPENID);
  const me = await shop.request({ url: bridge + '/auth/demo/me' });
  assert.equal(me.data.session.app, 'shop');
  assert.equal(me.data.user.id, login.user.id);

  // Revoked elsewhere: the next request gets 401 session_revoked, logs in again once and succeeds.
  const old = shop.getToken();
  const revoked = await fetch(bridge + '/auth/demo/logout', { headers: { Authorization: 'Bearer ' + old } });
  assert.equal(revoked.status, 200);
  const again = await shop.request({ url: bridge + '/auth/demo/me' });
  assert.equal(again.statusCode, 200);
  assert.equal(wx.logins, 2);
  assert.notEqual(shop.getToken(), old);

  // Phone number: the code flow and the encryptedData flow; user info.
  const code = await post(sim + '/_sim/miniprogram/phone_code', { appid: SHOP_APPID, openid: SHOP_OPENID });
  const byCode = await shop.getPhoneNumber({ detail: { errMsg: 'getPhoneNumber:ok', code: code.code } });
  assert.equal(byCode.purePhoneNumber, '13900000001');
  const enc = await post(sim + '/_sim/miniprogram/encrypted_data', { appid: SHOP_APPID, openid: SHOP_OPENID, kind: 'phone' });
  const byData = await shop.getPhoneNumber({ detail: { errMsg: 'getPhoneNumber:ok', ...enc } });
  assert.equal(byData.purePhoneNumber, '13900000001');
  const ui = await post(sim + '/_sim/miniprogram/encrypted_data', { appid: SHOP_APPID, openid: SHOP_OPENID, kind: 'userinfo' });
  const info = await shop.decryptUserInfo(ui);
  assert.equal(info.openid, SHOP_OPENID);
  assert.equal(info.nickname, '小明');

  // WeCom mini program of the same tenant, same storage: its own key and token.
  const wxq = simWx(sim, { appid: PORTAL_APPID, userid: PORTAL_USERID });
  wxq.getStorageSync = wx.getStorageSync;
  wxq.setStorageSync = wx.setStorageSync;
  wxq.removeStorageSync = wx.removeStorageSync;
  const portal = createClient({ baseUrl: bridge, tenant: 'demo', miniProgram: 'portal', wx: wxq });
  const wl = await portal.login();
  assert.equal(portal.platform, 'wecom');
  assert.equal(wl.userid, PORTAL_USERID);
  assert.notEqual(portal.getToken(), shop.getToken());
  const mobile = await post(sim + '/_sim/miniprogram/encrypted_data', { appid: PORTAL_APPID, userid: PORTAL_USERID, kind: 'phone' });
  assert.match((await portal.getPhoneNumber({ errMsg: 'qy__getMobile:ok', ...mobile })).purePhoneNumber, /^1\d{10}$/);
  const ent = await post(sim + '/_sim/miniprogram/encrypted_data', { appid: PORTAL_APPID, userid: PORTAL_USERID, kind: 'userinfo' });
  assert.equal((await portal.decryptUserInfo(ent)).userid, PORTAL_USERID);

  // Logout revokes on the bridge.
  const t = shop.getToken();
  assert.deepEqual(await shop.logout(), { revokedOnServer: true });
  const after = await fetch(bridge + '/auth/demo/me', { headers: { Authorization: 'Bearer ' + t } });
  assert.equal(after.status, 401);
  assert.equal((await after.json()).error.code, 'session_revoked');
  assert.ok(portal.getToken(), 'the other mini program keeps its session');

  // An unknown mini program key: the bridge's 404 as a WxbridgeError.
  const nope = createClient({ baseUrl: bridge, tenant: 'demo', miniProgram: 'nope', wx: simWx(sim, { appid: SHOP_APPID, openid: SHOP_OPENID }) });
  await assert.rejects(nope.login(), { code: 'not_found', status: 404 });
}

(async () => {
  if (!fs.existsSync(BIN)) {
    console.error(`no wxbridge binary at ${BIN}: run cargo build -p wxbridge first, or pass its path`);
    process.exit(2);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'wxbridge-mp-e2e-'));
  const port = await freePort();
  const bridge = `http://127.0.0.1:${port}`;
  const children = [];
  try {
    const sim = await start(['sim', '--fixture', FIXTURE, '--port', '0', '--write-config', path.join(dir, 'bridge.toml'),
      '--bridge-listen', `127.0.0.1:${port}`], dir, (out) => /"base_url":"[^"]+"/.test(out));
    children.push(sim.child);
    const simUrl = sim.output().match(/"base_url":"([^"]+)"/)[1];
    const serve = await start(['serve', '--config', path.join(dir, 'bridge.toml')], dir, (out) => /listening/.test(out));
    children.push(serve.child);
    await run(simUrl, bridge);
    console.log('mini-program SDK end-to-end against wxbridge serve + sim: ok');
  } catch (e) {
    console.error('mini-program SDK end-to-end failed:', e);
    process.exitCode = 1;
  } finally {
    for (const c of children) { c.removeAllListeners('exit'); c.kill('SIGTERM'); }
    fs.rmSync(dir, { recursive: true, force: true });
  }
})();
