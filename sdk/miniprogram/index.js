/*! @wxbridge/miniprogram: the wxbridge client for WeChat and WeCom mini programs.
 *
 *   const { createClient } = require('@wxbridge/miniprogram');
 *   const bridge = createClient({ baseUrl: 'https://bridge.example.com', tenant: 'acme', miniProgram: 'shop' });
 *   await bridge.login();                                   // wx.login (WeCom: wx.qy.login) -> session token
 *   const res = await bridge.request({ url: 'https://api.example.com/orders' });   // Authorization: Bearer wxs_...
 *
 * The bridge side (crates/server/src/routes/miniprogram.rs):
 *   POST {baseUrl}/api/v1/tenants/{tenant}/miniprograms/{key}/login    {code}  -> {token, expires_at_ms, user, ...}
 *   POST {baseUrl}/api/v1/tenants/{tenant}/miniprograms/{key}/phone    {code}  (bearer; WeChat only)
 *   POST {baseUrl}/api/v1/tenants/{tenant}/miniprograms/{key}/decrypt  {encrypted_data, iv, kind} (bearer)
 *   GET  {baseUrl}/auth/{tenant}/logout                                (bearer) revokes the session
 * A session that no longer verifies answers 401 with {"error": {"code": "session_expired" | ...}}; the
 * business backend checks tokens with POST .../sessions/verify and may pass that body on unchanged.
 *
 * Every call returns a Promise; every failure is a WxbridgeError { code, status, message } whose message
 * never contains the session token. Written in ES5 with Promises so it runs on old base libraries
 * without the "enhanced compile" option.
 */
'use strict';

var TOKEN_PREFIX = 'wxs_';
/** 401 codes that mean "this session is gone, a new login fixes it" (crates/server/src/routes/sessions.rs). */
var RENEWABLE_SESSION_CODES = ['session_expired', 'session_revoked', 'session_unknown', 'session_malformed'];
/** 409 from /decrypt: the bridge's session_key is not the one the data was encrypted with. */
var STALE_KEY_CODE = 'session_key_stale';
var PLATFORMS = ['wechat', 'wecom', 'auto'];

/** A failure of the SDK: `code` is stable and greppable, `status` the HTTP status (0 when there was none). */
function WxbridgeError(code, message, status, extra) {
  if (!(this instanceof WxbridgeError)) return new WxbridgeError(code, message, status, extra);
  this.name = 'WxbridgeError';
  this.code = String(code);
  this.status = typeof status === 'number' ? status : 0;
  this.message = 'wxbridge: ' + message;
  if (extra) {
    if (extra.data !== undefined) this.data = extra.data;
    if (extra.errMsg !== undefined) this.errMsg = extra.errMsg;
  }
  if (typeof Error.captureStackTrace === 'function') Error.captureStackTrace(this, WxbridgeError);
  else this.stack = new Error(this.message).stack;
}
WxbridgeError.prototype = Object.create(Error.prototype);
WxbridgeError.prototype.constructor = WxbridgeError;

function isObject(v) {
  return v !== null && typeof v === 'object';
}

function nonEmptyString(v) {
  return typeof v === 'string' && v.trim() !== '';
}

/** The `code` of an error body: the bridge's {"error": {"code"}}, or a backend's flat {"code"}. */
function bodyCode(data) {
  if (!isObject(data)) return null;
  if (isObject(data.error) && typeof data.error.code === 'string') return data.error.code;
  if (typeof data.code === 'string') return data.code;
  return null;
}

function bodyMessage(data) {
  if (!isObject(data)) return null;
  if (isObject(data.error) && typeof data.error.message === 'string') return data.error.message;
  if (typeof data.message === 'string') return data.message;
  return null;
}

/** A short, single-line excerpt of a non-JSON body (an HTML error page from a proxy, say). */
function textExcerpt(data) {
  if (typeof data !== 'string') return '';
  var text = data.replace(/<[^>]*>/g, ' ').replace(/\s+/g, ' ').trim();
  if (!text) return '';
  return text.length > 120 ? text.slice(0, 117) + '...' : text;
}

/** `value` with every occurrence of `secret` replaced, for a body that echoes the request back. */
function scrub(value, secret) {
  if (!secret) return value;
  if (typeof value === 'string') return value.split(secret).join('[redacted]');
  if (!isObject(value)) return value;
  var json;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    return undefined; // cyclic or exotic: better no body than one that might hold the token
  }
  return json.indexOf(secret) < 0 ? value : JSON.parse(json.split(secret).join('[redacted]'));
}

/** The WxbridgeError for a non-2xx answer of `what`; `token` (the one sent) is scrubbed from what is kept. */
function httpError(what, res, token) {
  res = { statusCode: res.statusCode, data: scrub(res.data, token) };
  var code = bodyCode(res.data);
  var message = bodyMessage(res.data);
  if (!message) {
    var excerpt = textExcerpt(res.data);
    message = 'HTTP ' + res.statusCode + (excerpt ? ': ' + excerpt : ' with a body that is not a wxbridge error');
  }
  return new WxbridgeError(code || 'http_' + res.statusCode, what + ' failed (' + res.statusCode +
    (code ? ' ' + code : '') + '): ' + message, res.statusCode, { data: res.data });
}

function ok(res) {
  return res.statusCode >= 200 && res.statusCode < 300;
}

/** `wx.login`-style callback API -> Promise. A failure keeps wx's errMsg. */
function callWx(fn, self, args, code, what) {
  return new Promise(function (resolve, reject) {
    var settled = false;
    var o = {};
    for (var k in args) if (Object.prototype.hasOwnProperty.call(args, k)) o[k] = args[k];
    o.success = function (res) {
      if (settled) return;
      settled = true;
      resolve(res);
    };
    o.fail = function (res) {
      if (settled) return;
      settled = true;
      var errMsg = (res && res.errMsg) || String(res);
      reject(new WxbridgeError(code, what + ' failed: ' + errMsg, 0, { errMsg: errMsg }));
    };
    try {
      fn.call(self, o);
    } catch (e) {
      if (settled) return;
      settled = true;
      reject(new WxbridgeError(code, what + ' threw: ' + (e && e.message ? e.message : String(e)), 0));
    }
  });
}

/** The mini program's `wx` (a free variable there; this file declares no `wx` of its own at this level). */
function globalWx() {
  if (typeof wx !== 'undefined') return wx; // eslint-disable-line no-undef
  if (typeof globalThis !== 'undefined') return globalThis.wx;
  return undefined;
}

/** Registry of storage keys in use, so two mini programs never end up sharing one token by accident. */
var storageOwners = {};

function trimSlash(url) {
  return String(url).replace(/\/+$/, '');
}

/**
 * A client for one mini program of one tenant. Options:
 *   baseUrl      the bridge, e.g. https://bridge.example.com (must be in the mini program's request domains)
 *   tenant       the tenant key
 *   miniProgram  the mini program's key under wechat.mini_programs or wecom.mini_programs
 *   platform     'wechat' (wx.login), 'wecom' (wx.qy.login) or 'auto' (default: WeCom when running in WeCom)
 *   storageKey   where the session is kept (default wxbridge:session:{tenant}:{miniProgram})
 *   apiBaseUrl   what request() resolves relative URLs against (default: baseUrl)
 *   wx           the wx object (default: the global one)
 *   now          () => milliseconds, for tests (default Date.now)
 */
function createClient(options) {
  var o = options;
  if (!isObject(o)) throw new WxbridgeError('bad_argument', 'createClient needs { baseUrl, tenant, miniProgram }');
  ['baseUrl', 'tenant', 'miniProgram'].forEach(function (name) {
    if (!nonEmptyString(o[name])) {
      throw new WxbridgeError('bad_argument', 'createClient needs `' + name + '` (a non-empty string)');
    }
  });
  if (!/^https?:\/\//i.test(o.baseUrl)) {
    throw new WxbridgeError('bad_argument', 'baseUrl must start with https:// (or http:// in development), got `' +
      o.baseUrl + '`');
  }
  var platformOption = o.platform === undefined ? 'auto' : o.platform;
  if (PLATFORMS.indexOf(platformOption) < 0) {
    throw new WxbridgeError('bad_argument', "platform must be 'wechat', 'wecom' or 'auto', got `" + o.platform + '`');
  }
  if (o.storageKey !== undefined && !nonEmptyString(o.storageKey)) {
    throw new WxbridgeError('bad_argument', 'storageKey must be a non-empty string');
  }
  if (o.apiBaseUrl !== undefined && !/^https?:\/\//i.test(String(o.apiBaseUrl))) {
    throw new WxbridgeError('bad_argument', 'apiBaseUrl must start with https:// (or http://)');
  }
  var wx = o.wx || globalWx();
  if (!isObject(wx) || typeof wx.request !== 'function') {
    throw new WxbridgeError('bad_argument', 'no wx object: run inside a mini program or pass { wx }');
  }
  var now = typeof o.now === 'function' ? o.now : Date.now;
  var baseUrl = trimSlash(o.baseUrl);
  var apiBaseUrl = trimSlash(o.apiBaseUrl || baseUrl);
  var tenant = o.tenant;
  var miniProgram = o.miniProgram;
  var storageKey = o.storageKey || 'wxbridge:session:' + tenant + ':' + miniProgram;
  var owner = 'tenant `' + tenant + '`, mini program `' + miniProgram + '`';
  if (storageOwners[storageKey] !== undefined && storageOwners[storageKey] !== owner) {
    throw new WxbridgeError('bad_argument', 'storageKey `' + storageKey + '` is already used by the client of ' +
      storageOwners[storageKey] + '; give each mini program its own storageKey');
  }
  storageOwners[storageKey] = owner;

  var miniPath = baseUrl + '/api/v1/tenants/' + encodeURIComponent(tenant) + '/miniprograms/' +
    encodeURIComponent(miniProgram);
  var detectedPlatform = null;
  // The session ({ token, expiresAtMs, user, provider, app }) lives in storage, read on every use so that
  // two clients of one mini program (app.js and a page, say) see each other's logins. `memory` is used
  // only when the storage refused the write.
  var memory = null;
  var memoryOnly = false;
  var loginInFlight = null;

  function platform() {
    if (platformOption !== 'auto') return platformOption;
    if (detectedPlatform) return detectedPlatform;
    var env = null;
    try {
      env = typeof wx.getSystemInfoSync === 'function' ? wx.getSystemInfoSync().environment : null;
    } catch (e) { /* not available: fall back to wx.qy */ }
    detectedPlatform = env === 'wxwork' || (isObject(wx.qy) && typeof wx.qy.login === 'function')
      ? 'wecom' : 'wechat';
    return detectedPlatform;
  }

  function validSession(s) {
    return isObject(s) && typeof s.token === 'string' && s.token.indexOf(TOKEN_PREFIX) === 0 &&
      typeof s.expiresAtMs === 'number';
  }

  function current() {
    var s = null;
    if (memoryOnly) {
      s = memory;
    } else {
      try {
        s = typeof wx.getStorageSync === 'function' ? wx.getStorageSync(storageKey) : memory;
      } catch (e) { /* unreadable storage counts as no session */ }
    }
    if (!validSession(s)) return null;
    if (now() >= s.expiresAtMs) {
      forget();
      return null;
    }
    return s;
  }

  function remember(s) {
    memory = s;
    memoryOnly = false;
    try {
      if (typeof wx.setStorageSync === 'function') wx.setStorageSync(storageKey, s);
    } catch (e) {
      memoryOnly = true; // storage full or refused: the session still lives in memory for this run
    }
  }

  function forget() {
    memory = null;
    memoryOnly = false;
    try {
      if (typeof wx.removeStorageSync === 'function') wx.removeStorageSync(storageKey);
    } catch (e) { /* nothing more to do */ }
  }

  /** wx.request as a Promise of { statusCode, data, header }; network failures reject. */
  function send(req) {
    var args = {
      url: req.url,
      method: req.method || 'GET',
      header: req.header || {},
      dataType: req.dataType || 'json'
    };
    if (req.data !== undefined) args.data = req.data;
    if (req.timeout !== undefined) args.timeout = req.timeout;
    if (req.responseType !== undefined) args.responseType = req.responseType;
    return callWx(wx.request, wx, args, 'network_error', req.what).then(function (res) {
      return { statusCode: res.statusCode, data: res.data, header: res.header || {} };
    });
  }

  function wxCode() {
    var p = platform();
    if (p === 'wecom') {
      if (!isObject(wx.qy) || typeof wx.qy.login !== 'function') {
        return Promise.reject(new WxbridgeError('wx_login_failed',
          "platform is 'wecom' but wx.qy.login is missing: this is not a WeCom mini program runtime"));
      }
      return callWx(wx.qy.login, wx.qy, {}, 'wx_login_failed', 'wx.qy.login');
    }
    if (typeof wx.login !== 'function') {
      return Promise.reject(new WxbridgeError('wx_login_failed', 'wx.login is missing'));
    }
    return callWx(wx.login, wx, {}, 'wx_login_failed', 'wx.login');
  }

  function doLogin() {
    var p = platform();
    return wxCode()
      .then(function (res) {
        if (!res || !nonEmptyString(res.code)) {
          throw new WxbridgeError('wx_login_failed', (p === 'wecom' ? 'wx.qy.login' : 'wx.login') +
            ' succeeded without a code' + (res && res.errMsg ? ' (' + res.errMsg + ')' : ''));
        }
        return send({
          what: 'bridge login',
          url: miniPath + '/login',
          method: 'POST',
          header: { 'content-type': 'application/json' },
          data: { code: res.code }
        });
      })
      .then(function (res) {
        if (!ok(res)) {
          var e = httpError('bridge login', res);
          if (e.code === 'invalid_code') {
            e.message += ' (the code came from ' + (p === 'wecom' ? 'wx.qy.login' : 'wx.login') +
              ": check that mini program `" + miniProgram + "` is configured under " +
              (p === 'wecom' ? 'wecom' : 'wechat') + ".mini_programs, or set platform)";
          }
          throw e;
        }
        var b = res.data;
        if (!isObject(b) || typeof b.token !== 'string' || b.token.indexOf(TOKEN_PREFIX) !== 0 ||
            typeof b.expires_at_ms !== 'number') {
          throw new WxbridgeError('bad_response', 'bridge login answered ' + res.statusCode +
            ' without a session token: is baseUrl the bridge?', res.statusCode);
        }
        remember({
          token: b.token,
          expiresAtMs: b.expires_at_ms,
          provider: b.provider,
          app: b.app,
          user: isObject(b.user) ? b.user : null
        });
        return {
          user: isObject(b.user) ? b.user : null,
          expiresAtMs: b.expires_at_ms,
          provider: b.provider,
          app: b.app,
          createdUser: b.created_user === true,
          openid: b.openid,
          unionid: b.unionid,
          userid: b.userid,
          mergedUsers: Array.isArray(b.merged_users) ? b.merged_users : []
        };
      });
  }

  /** One login at a time: callers during a login share it. */
  function login() {
    if (!loginInFlight) {
      loginInFlight = doLogin().then(function (r) {
        loginInFlight = null;
        return r;
      }, function (e) {
        loginInFlight = null;
        throw e;
      });
    }
    return loginInFlight;
  }

  /** A token to send: the kept one, or one from a (shared) login. */
  function ensureToken() {
    if (loginInFlight) return loginInFlight.then(tokenAfterLogin);
    var s = current();
    if (s) return Promise.resolve(s.token);
    return login().then(tokenAfterLogin);
  }

  function tokenAfterLogin() {
    var s = current();
    if (!s) throw new WxbridgeError('not_logged_in', 'the login finished but its session is already gone');
    return s.token;
  }

  /** After `stale` was refused: a newer token if another caller already logged in again, else a new login. */
  function renew(stale) {
    if (loginInFlight) return loginInFlight.then(tokenAfterLogin);
    var s = current();
    if (s && s.token !== stale) return Promise.resolve(s.token);
    if (s) forget();
    return login().then(tokenAfterLogin);
  }

  function withBearer(header, token) {
    var h = {};
    if (isObject(header)) {
      for (var k in header) {
        if (Object.prototype.hasOwnProperty.call(header, k) && k.toLowerCase() !== 'authorization') h[k] = header[k];
      }
    }
    h.Authorization = 'Bearer ' + token;
    return h;
  }

  /**
   * Send `req` with the session; `renewable(res)` says whether a refused answer is fixed by logging in
   * again. That happens at most once per call: a second refusal is the answer. Non-2xx rejects.
   */
  function authed(req, renewable) {
    var used;
    function attempt(token) {
      used = token;
      var r = {};
      for (var k in req) if (Object.prototype.hasOwnProperty.call(req, k)) r[k] = req[k];
      r.header = withBearer(req.header, token);
      return send(r);
    }
    return ensureToken()
      .then(attempt)
      .then(function (res) {
        if (!renewable(res)) return res;
        return renew(used).then(attempt);
      })
      .then(function (res) {
        if (!ok(res)) throw httpError(req.what, res, used);
        return res;
      });
  }

  function sessionRefused(res) {
    return res.statusCode === 401 && RENEWABLE_SESSION_CODES.indexOf(bodyCode(res.data)) >= 0;
  }

  /** POST to one of the bridge's bearer routes; non-2xx rejects. */
  function bridgeCall(route, data, what, renewable) {
    return authed({
      what: what,
      url: miniPath + '/' + route,
      method: 'POST',
      header: { 'content-type': 'application/json' },
      data: data
    }, renewable || sessionRefused).then(function (res) {
      if (!isObject(res.data)) {
        throw new WxbridgeError('bad_response', what + ' answered ' + res.statusCode + ' without a JSON body',
          res.statusCode);
      }
      return res.data;
    });
  }

  /** Session refused, or (decrypt only) the bridge's session_key is older than the client's. */
  function decryptRenewable(res) {
    return sessionRefused(res) || (res.statusCode === 409 && bodyCode(res.data) === STALE_KEY_CODE);
  }

  function phoneResult(b) {
    return {
      userId: b.user_id,
      phoneNumber: b.phone_number,
      purePhoneNumber: b.pure_phone_number,
      countryCode: b.country_code === undefined ? null : b.country_code
    };
  }

  function decrypt(kind, input, what) {
    if (!isObject(input) || !nonEmptyString(input.encryptedData) || !nonEmptyString(input.iv)) {
      return Promise.reject(new WxbridgeError('bad_argument', what + ' needs { encryptedData, iv } as wx returned them'));
    }
    return bridgeCall('decrypt', { encrypted_data: input.encryptedData, iv: input.iv, kind: kind }, what,
      decryptRenewable);
  }

  /** The detail of a getPhoneNumber event (or the event itself, or wx.qy.getMobile's result). */
  function phoneDetail(arg) {
    if (!isObject(arg)) return null;
    if (isObject(arg.detail) && arg.code === undefined && arg.encryptedData === undefined) return arg.detail;
    return arg;
  }

  var client = {
    /** 'wechat' or 'wecom': which login this client uses. */
    get platform() {
      return platform();
    },
    get tenant() {
      return tenant;
    },
    get miniProgram() {
      return miniProgram;
    },
    get storageKey() {
      return storageKey;
    },
    /** The logged-in user ({ id, name, status, avatar }), or null. */
    get user() {
      var s = current();
      return s ? s.user : null;
    },

    /** The session token, or null when there is none (or it has expired). */
    getToken: function () {
      var s = current();
      return s ? s.token : null;
    },

    /** wx.login / wx.qy.login, then the bridge's login; keeps the token. Concurrent calls share one login. */
    login: login,

    /**
     * wx.request with `Authorization: Bearer <token>`. Logs in first when there is no token; on a 401
     * whose code says the session is gone, logs in again once and retries once. Resolves with
     * { statusCode, data, header } for 2xx, rejects with a WxbridgeError otherwise.
     */
    request: function (req) {
      if (!isObject(req) || !nonEmptyString(req.url)) {
        return Promise.reject(new WxbridgeError('bad_argument', 'request needs { url }'));
      }
      var url = /^https?:\/\//i.test(req.url) ? req.url
        : apiBaseUrl + (req.url.charAt(0) === '/' ? '' : '/') + req.url;
      var method = String(req.method || 'GET').toUpperCase();
      return authed({
        what: method + ' ' + url.replace(/\?.*$/, ''),
        url: url,
        method: method,
        header: req.header,
        data: req.data,
        timeout: req.timeout,
        dataType: req.dataType,
        responseType: req.responseType
      }, sessionRefused);
    },

    /**
     * The phone number from a getPhoneNumber button: its `code` (WeChat, exchanged by the bridge) or
     * its encryptedData + iv (WeChat's older flow; WeCom's wx.qy.getMobile), decrypted by the bridge.
     * Resolves with { userId, phoneNumber, purePhoneNumber, countryCode }; the bridge also keeps it as
     * the user's mobile.
     */
    getPhoneNumber: function (eventOrDetail) {
      var d = phoneDetail(eventOrDetail);
      if (!d) {
        return Promise.reject(new WxbridgeError('bad_argument',
          'getPhoneNumber needs the getPhoneNumber event (or its detail, or wx.qy.getMobile\'s result)'));
      }
      if (typeof d.errMsg === 'string' && !/:ok$/.test(d.errMsg)) {
        var denied = /deny|denied|cancel/i.test(d.errMsg);
        return Promise.reject(new WxbridgeError(denied ? 'user_denied' : 'wx_api_failed',
          (denied ? 'the user did not share a phone number: ' : 'getPhoneNumber failed: ') + d.errMsg, 0,
          { errMsg: d.errMsg }));
      }
      var p = platform();
      if (nonEmptyString(d.code) && p === 'wechat') {
        return bridgeCall('phone', { code: d.code }, 'phone number').then(phoneResult);
      }
      if (nonEmptyString(d.encryptedData) && nonEmptyString(d.iv)) {
        return decrypt('phone', d, 'phone number').then(phoneResult);
      }
      return Promise.reject(new WxbridgeError('bad_argument', p === 'wecom'
        ? 'WeCom has no phone-number code exchange: pass the encryptedData and iv of wx.qy.getMobile'
        : 'getPhoneNumber needs the event\'s `code`, or its `encryptedData` and `iv`'));
    },

    /**
     * Decrypt what wx.getUserInfo / wx.getUserProfile (WeChat) or wx.qy.getEnterpriseUserInfo (WeCom)
     * returned; the bridge checks the watermark and fills the user's profile. Resolves with
     * { userId, openid, unionid, nickname, avatar, userid, mergedUsers } (fields the data had).
     */
    decryptUserInfo: function (input) {
      return decrypt('user_info', input, 'user info').then(function (b) {
        return {
          userId: b.user_id,
          openid: b.openid === undefined ? null : b.openid,
          unionid: b.unionid === undefined ? null : b.unionid,
          nickname: b.nickname === undefined ? null : b.nickname,
          avatar: b.avatar === undefined ? null : b.avatar,
          userid: b.userid === undefined ? null : b.userid,
          mergedUsers: Array.isArray(b.merged_users) ? b.merged_users : []
        };
      });
    },

    /**
     * Forget the session here and revoke it on the bridge (GET /auth/{tenant}/logout with the bearer
     * token). Never rejects: the local token is gone either way; resolves { revokedOnServer } saying
     * whether the bridge confirmed.
     */
    logout: function () {
      var wait = loginInFlight ? loginInFlight.then(function () {}, function () {}) : Promise.resolve();
      return wait.then(function () {
        var s = current();
        forget();
        if (!s) return { revokedOnServer: false };
        return send({
          what: 'bridge logout',
          url: baseUrl + '/auth/' + encodeURIComponent(tenant) + '/logout',
          method: 'GET',
          header: { Authorization: 'Bearer ' + s.token },
          dataType: 'text'
        }).then(function (res) {
          return { revokedOnServer: ok(res) };
        }, function () {
          return { revokedOnServer: false };
        });
      });
    }
  };
  return client;
}

var api = { createClient: createClient, WxbridgeError: WxbridgeError };
api.default = api;
module.exports = api;
