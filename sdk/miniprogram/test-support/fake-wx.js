// A fake mini-program `wx` (login, qy.login, request, storage, getSystemInfoSync) and a fake bridge +
// business backend behind wx.request. No network. Kept outside test/ so the runner does not take it for a test file.
'use strict';

let tokenCounter = 0;

/** A token shaped like the bridge's: wxs_ + 64 hex digits, unique per call. */
function newToken() {
  tokenCounter += 1;
  return 'wxs_' + tokenCounter.toString(16).padStart(64, '0');
}

const BRIDGE = 'https://bridge.example.com';
const API = 'https://api.example.com';

/**
 * The bridge and a business backend in one place. `tokens` maps a live token to its mini program key;
 * `expire(token)` / `revoke(token)` make it fail the way the real bridge does.
 */
function fakeServers() {
  const s = {
    tokens: new Map(), // token -> { key, state: 'live' | 'expired' | 'revoked' }
    logins: [], // { tenant, key, code }
    codes: new Map(), // code -> platform that minted it
    logouts: [],
    phoneCodes: [],
    decrypts: [],
    users: new Map(), // key -> user id for that mini program
    /** Override the answer of a route: (req) => answer | undefined (fall through). */
    override: null,
    expire(token) { s.tokens.get(token).state = 'expired'; },
    revoke(token) { s.tokens.get(token).state = 'revoked'; },
    /** The state of a bearer header: null when live. */
    refusal(req) {
      const auth = req.header && (req.header.Authorization || req.header.authorization);
      if (!auth) return { statusCode: 401, data: { error: { code: 'session_missing', message: 'no token' } } };
      const token = auth.replace(/^Bearer /, '');
      const t = s.tokens.get(token);
      if (!t) return { statusCode: 401, data: { error: { code: 'session_unknown', message: 'unknown session' } } };
      if (t.state === 'expired') {
        return { statusCode: 401, data: { error: { code: 'session_expired', message: 'session expired at 1700000000000' } } };
      }
      if (t.state === 'revoked') {
        return { statusCode: 401, data: { error: { code: 'session_revoked', message: 'session revoked' } } };
      }
      return null;
    },
    handle(req) {
      if (s.override) {
        const a = s.override(req);
        if (a) return a;
      }
      const url = new URL(req.url);
      let m;
      if (url.origin === BRIDGE &&
          (m = url.pathname.match(/^\/api\/v1\/tenants\/([^/]+)\/miniprograms\/([^/]+)\/(login|phone|decrypt)$/))) {
        const tenant = decodeURIComponent(m[1]);
        const key = decodeURIComponent(m[2]);
        if (req.method !== 'POST') return { statusCode: 405, data: '' };
        if (m[3] === 'login') {
          if (req.header.Authorization || req.header.authorization) {
            throw new Error('the login route must not get a bearer token');
          }
          const code = req.data && req.data.code;
          if (!s.codes.has(code)) {
            return { statusCode: 400, data: { error: { code: 'invalid_code', message: 'MP001 invalid code' } } };
          }
          const platform = s.codes.get(code);
          s.codes.delete(code);
          s.logins.push({ tenant, key, code });
          const token = newToken();
          s.tokens.set(token, { key, state: 'live' });
          if (!s.users.has(key)) s.users.set(key, 100 + s.users.size);
          return {
            statusCode: 200,
            data: {
              token,
              expires_at_ms: 4102444800000,
              provider: platform === 'wecom' ? 'wecom_mini_program' : 'wechat_mini_program',
              app: key,
              user: { id: s.users.get(key), name: platform === 'wecom' ? 'Zhang San' : 'WeChat user', status: 'active', avatar: null },
              created_user: s.logins.length === 1,
              ...(platform === 'wecom' ? { userid: 'zhangsan' } : { openid: 'o' + key + '-openid' }),
              merged_users: []
            }
          };
        }
        const refused = s.refusal(req);
        if (refused) return refused;
        const auth = req.header.Authorization.replace(/^Bearer /, '');
        if (s.tokens.get(auth).key !== key) {
          return { statusCode: 403, data: { error: { code: 'session_provider_mismatch', message: 'MP006 other mini program' } } };
        }
        if (m[3] === 'phone') {
          s.phoneCodes.push(req.data.code);
          return {
            statusCode: 200,
            data: { user_id: s.users.get(key), phone_number: '+86 13800138000', pure_phone_number: '13800138000', country_code: '86' }
          };
        }
        s.decrypts.push({ ...req.data, token: auth });
        if (req.data.kind === 'phone') {
          return {
            statusCode: 200,
            data: {
              kind: 'phone', user_id: s.users.get(key), phone_number: '13900139000', pure_phone_number: '13900139000',
              country_code: '86', merged_users: []
            }
          };
        }
        return {
          statusCode: 200,
          data: {
            kind: 'user_info', user_id: s.users.get(key), openid: 'o' + key + '-openid', unionid: 'union-1',
            nickname: 'Nick', avatar: 'https://img.example.com/a.png', merged_users: [7]
          }
        };
      }
      if (url.origin === BRIDGE && /^\/auth\/[^/]+\/logout$/.test(url.pathname)) {
        const auth = (req.header.Authorization || '').replace(/^Bearer /, '');
        s.logouts.push(auth);
        if (s.tokens.has(auth)) s.revoke(auth);
        return { statusCode: 200, data: '<!doctype html><title>Logged out</title><p>You are logged out.</p>' };
      }
      if (url.origin === API) {
        const refused = s.refusal(req);
        if (refused) return refused;
        return { statusCode: 200, data: { path: url.pathname, query: url.search, method: req.method, got: req.data } };
      }
      return { statusCode: 404, data: { error: { code: 'not_found', message: 'not found' } } };
    }
  };
  return s;
}

/**
 * A fake `wx`. `platform` 'wecom' adds wx.qy and reports environment 'wxwork' (unless `env` says otherwise).
 * `loginFail`: an errMsg that wx.login / wx.qy.login fail with. `servers`: who answers wx.request (shared by
 * several fake mini programs when passed in). Everything is asynchronous like the real thing.
 */
function fakeWx({ platform = 'wechat', env, loginFail, servers = fakeServers(), qy } = {}) {
  const storage = new Map();
  const requests = [];
  const calls = { login: 0, qyLogin: 0 };
  let codeCounter = 0;
  const later = (fn) => setImmediate(fn);
  const mint = (kind) => {
    codeCounter += 1;
    const code = kind + '-code-' + codeCounter + '-' + Math.random().toString(36).slice(2, 8);
    servers.codes.set(code, kind);
    return code;
  };
  const wx = {
    requests,
    calls,
    storage,
    servers,
    login(o) {
      calls.login += 1;
      later(() => (loginFail ? o.fail({ errMsg: loginFail }) : o.success({ errMsg: 'login:ok', code: mint('wechat') })));
    },
    getSystemInfoSync() {
      return { platform: 'devtools', environment: env !== undefined ? env : platform === 'wecom' ? 'wxwork' : undefined };
    },
    getStorageSync(key) {
      // The real one answers '' for a missing key; stored values come back as copies.
      return storage.has(key) ? JSON.parse(storage.get(key)) : '';
    },
    setStorageSync(key, value) { storage.set(key, JSON.stringify(value)); },
    removeStorageSync(key) { storage.delete(key); },
    request(o) {
      const req = { url: o.url, method: o.method || 'GET', header: { ...(o.header || {}) }, data: o.data, dataType: o.dataType };
      requests.push(req);
      later(() => {
        let a;
        try {
          a = servers.handle(req);
        } catch (e) {
          o.fail({ errMsg: 'request:fail ' + e.message });
          return;
        }
        // `after`: a promise the answer waits for, to order concurrent answers in a test.
        Promise.resolve(a.after).then(() => {
          if (a.fail) {
            o.fail({ errMsg: a.fail });
            return;
          }
          let data = a.data;
          // dataType 'json' (the default) parses a JSON body and leaves any other text as a string.
          if (typeof data === 'string' && (o.dataType || 'json') === 'json') {
            try { data = JSON.parse(data); } catch (e) { /* stays a string */ }
          }
          o.success({ statusCode: a.statusCode, data, header: { 'Content-Type': 'application/json' }, errMsg: 'request:ok' });
        });
      });
    }
  };
  if (platform === 'wecom' || qy) {
    wx.qy = {
      login(o) {
        calls.qyLogin += 1;
        later(() => (loginFail ? o.fail({ errMsg: loginFail }) : o.success({ errMsg: 'qy__login:ok', code: mint('wecom') })));
      }
    };
  }
  return wx;
}

module.exports = { fakeWx, fakeServers, newToken, BRIDGE, API };
