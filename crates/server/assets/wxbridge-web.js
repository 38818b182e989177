/*! wxbridge-web.js: the wxbridge loader for web pages inside WeCom and WeChat.
 *
 *   <script src="https://bridge.example.com/sdk/wxbridge-web.js"
 *           data-tenant="acme" data-wecom-app="main" data-wechat-app="oa"
 *           data-js-api-list="scanQRCode,getLocation"></script>
 *   <script>
 *     wxbridge.ready().then(function (r) { ... r.env is "wecom", "wechat" or "other" ... });
 *     wxbridge.login({ returnTo: location.href });
 *   </script>
 *
 * or, without data attributes, wxbridge.init({ bridge, tenant, wecomApp, wechatApp, jsApiList }).
 *
 * Inside WeCom (user agent "wxwork/") it configures the WeCom app: wx.config with the company ticket,
 * then wx.agentConfig with the app ticket. Inside WeChat ("MicroMessenger" without "wxwork") it
 * configures the official account with wx.config. Elsewhere there is no JS-SDK; ready() resolves with
 * env "other". The configuration is signed by the bridge for location.href without its fragment
 * (GET /api/v1/tenants/{tenant}/jssdk/config). jweixin is loaded from res.wx.qq.com when the page has
 * not loaded it itself.
 */
(function (global) {
  'use strict';

  var JWEIXIN_WECOM = 'https://res.wx.qq.com/open/js/jweixin-1.2.0.js';
  var JWEIXIN_WECHAT = 'https://res.wx.qq.com/open/js/jweixin-1.6.0.js';
  var JWXWORK = 'https://open.work.weixin.qq.com/wwopen/js/jwxwork-1.0.0.js';

  function fail(message) {
    return new Error('wxbridge: ' + message);
  }

  /** "wecom", "wechat" or "other", from a user agent string. WeCom's also says MicroMessenger. */
  function detectEnv(userAgent) {
    var ua = String(userAgent || '');
    if (/wxwork\//i.test(ua)) return 'wecom';
    if (/MicroMessenger/i.test(ua)) return 'wechat';
    return 'other';
  }

  /** The URL the JS-SDK signs: the page URL without its fragment (the query stays). */
  function stripFragment(href) {
    var s = String(href || '');
    var i = s.indexOf('#');
    return i < 0 ? s : s.slice(0, i);
  }

  function list(value) {
    if (!value) return [];
    if (Array.isArray(value)) return value.slice();
    return String(value).split(',').map(function (s) { return s.trim(); }).filter(Boolean);
  }

  function create(win) {
    var options = null;
    var readyPromise = null;
    // document.currentScript is only set while this file runs, so keep the tag now.
    var scriptTag = win.document ? win.document.currentScript : null;

    function env() {
      if (options && options.env) return options.env;
      return detectEnv(win.navigator && win.navigator.userAgent);
    }

    /** Options from the script tag's data attributes; the bridge defaults to the script's origin. */
    function fromScriptTag() {
      var script = scriptTag;
      if (!script || !script.getAttribute) return null;
      var o = {};
      try {
        o.bridge = new URL(script.src).origin;
      } catch (e) { /* an inline copy: bridge must come from data-bridge */ }
      var attr = function (name) { return script.getAttribute('data-' + name); };
      if (attr('bridge')) o.bridge = attr('bridge');
      o.tenant = attr('tenant');
      o.wecomApp = attr('wecom-app');
      o.wechatApp = attr('wechat-app');
      o.jsApiList = list(attr('js-api-list'));
      o.debug = attr('debug') === 'true';
      return o.tenant ? o : null;
    }

    function normalise(o) {
      if (!o || !o.tenant) throw fail('init needs { tenant } (and bridge, wecomApp and/or wechatApp)');
      if (!o.bridge) throw fail('init needs { bridge }: the base URL of wxbridge');
      var n = {};
      for (var k in o) if (Object.prototype.hasOwnProperty.call(o, k)) n[k] = o[k];
      n.bridge = String(o.bridge).replace(/\/+$/, '');
      n.jsApiList = list(o.jsApiList);
      n.agentJsApiList = o.agentJsApiList ? list(o.agentJsApiList) : n.jsApiList;
      return n;
    }

    function configUrl(provider, app) {
      return options.bridge + '/api/v1/tenants/' + encodeURIComponent(options.tenant) +
        '/jssdk/config?provider=' + provider + '&app=' + encodeURIComponent(app) +
        '&url=' + encodeURIComponent(stripFragment(win.location.href));
    }

    function fetchConfig(provider, app) {
      if (typeof win.fetch !== 'function') return Promise.reject(fail('this browser has no fetch()'));
      return win.fetch(configUrl(provider, app), { credentials: 'omit', mode: 'cors' })
        .then(function (res) {
          return res.json().catch(function () { return null; }).then(function (body) {
            if (!res.ok) {
              var e = body && body.error;
              var err = fail('jssdk config refused (' + res.status + (e ? ' ' + e.code + '): ' + e.message : ')'));
              err.status = res.status;
              err.code = e && e.code;
              throw err;
            }
            return body;
          });
        });
    }

    function loadScript(src) {
      return new Promise(function (resolve, reject) {
        var doc = win.document;
        if (!doc || !doc.createElement) return reject(fail('cannot load ' + src + ' without a document'));
        var s = doc.createElement('script');
        s.src = src;
        s.async = true;
        s.onload = function () { resolve(); };
        s.onerror = function () { reject(fail('cannot load ' + src)); };
        (doc.head || doc.documentElement).appendChild(s);
      });
    }

    function ensureWx(provider) {
      if (win.wx && typeof win.wx.config === 'function') return Promise.resolve(win.wx);
      var src = options.jweixinUrl || (provider === 'wecom' ? JWEIXIN_WECOM : JWEIXIN_WECHAT);
      return loadScript(src).then(function () {
        if (!win.wx || typeof win.wx.config !== 'function') throw fail(src + ' did not define wx.config');
        return win.wx;
      });
    }

    function ensureAgentConfig(wx) {
      if (typeof wx.agentConfig === 'function') return Promise.resolve(wx);
      return loadScript(options.jwxworkUrl || JWXWORK).then(function () {
        if (typeof wx.agentConfig !== 'function') throw fail('wx.agentConfig is not available');
        return wx;
      });
    }

    function assign(target, source) {
      for (var k in source) if (Object.prototype.hasOwnProperty.call(source, k)) target[k] = source[k];
      return target;
    }

    /** wx.config, then wait for wx.ready or wx.error. */
    function wxConfig(wx, config) {
      return new Promise(function (resolve, reject) {
        wx.ready(function () { resolve(); });
        wx.error(function (res) {
          reject(fail('wx.config failed: ' + ((res && res.errMsg) || JSON.stringify(res))));
        });
        wx.config(assign({ debug: !!options.debug, jsApiList: options.jsApiList }, config));
      });
    }

    function wxAgentConfig(wx, agentConfig) {
      return new Promise(function (resolve, reject) {
        wx.agentConfig(assign(assign({ jsApiList: options.agentJsApiList }, agentConfig), {
          success: function (res) { resolve(res); },
          fail: function (res) {
            reject(fail('wx.agentConfig failed: ' + ((res && res.errMsg) || JSON.stringify(res))));
          }
        }));
      });
    }

    function start() {
      var where = env();
      if (where === 'other') {
        return Promise.resolve({ env: 'other', provider: null, app: null, config: null });
      }
      var provider = where === 'wecom' ? 'wecom' : 'wechat';
      var app = provider === 'wecom' ? options.wecomApp : options.wechatApp;
      if (!app) {
        return Promise.reject(fail('running inside ' + (provider === 'wecom' ? 'WeCom' : 'WeChat') +
          ' but no ' + (provider === 'wecom' ? 'wecomApp' : 'wechatApp') + ' was given to init'));
      }
      var cfg;
      return fetchConfig(provider, app)
        .then(function (body) { cfg = body; return ensureWx(provider); })
        .then(function (wx) {
          return wxConfig(wx, cfg.config).then(function () {
            if (provider !== 'wecom' || !cfg.agent_config) return null;
            return ensureAgentConfig(wx).then(function () { return wxAgentConfig(wx, cfg.agent_config); });
          });
        })
        .then(function () { return { env: where, provider: provider, app: app, config: cfg }; });
    }

    var api = {
      version: '1',
      detectEnv: detectEnv,
      stripFragment: stripFragment,
      env: env,

      /** Configure once; returns the ready promise (a second call returns the same one). */
      init: function (o) {
        if (readyPromise) return readyPromise;
        try {
          options = normalise(o);
        } catch (e) {
          return Promise.reject(e);
        }
        readyPromise = start();
        return readyPromise;
      },

      /** Resolves once wx.config (and, in WeCom, wx.agentConfig) succeeded: { env, provider, app, config }. */
      ready: function () {
        if (readyPromise) return readyPromise;
        var o = fromScriptTag();
        if (!o) return Promise.reject(fail('call wxbridge.init({ bridge, tenant, ... }) first'));
        return api.init(o);
      },

      /**
       * The login URL on the bridge: /auth/{tenant}/wecom/{app}/login in WeCom (and by default
       * elsewhere when a wecomApp is set), /auth/{tenant}/wechat/{app}/login in WeChat,
       * /auth/{tenant}/wechat/website/login for WeChat outside WeChat. { returnTo, provider, app, mode, scope }.
       */
      loginUrl: function (o) {
        o = o || {};
        if (!options) {
          var tag = fromScriptTag();
          if (tag) options = normalise(tag);
        }
        if (!options) throw fail('call wxbridge.init({ bridge, tenant, ... }) first');
        var where = env();
        var provider = o.provider ||
          (where === 'wecom' ? 'wecom' : where === 'wechat' ? 'wechat' : options.wecomApp ? 'wecom' : 'wechat');
        if (provider !== 'wecom' && provider !== 'wechat') throw fail('provider must be "wecom" or "wechat"');
        var app = o.app || (provider === 'wecom' ? options.wecomApp
          : where === 'wechat' ? options.wechatApp : 'website');
        if (!app) throw fail('no ' + provider + ' app to log in with; pass { app } or set it in init');
        var url = options.bridge + '/auth/' + encodeURIComponent(options.tenant) + '/' + provider + '/' +
          encodeURIComponent(app) + '/login?return_to=' + encodeURIComponent(o.returnTo || win.location.href);
        if (o.mode) url += '&mode=' + encodeURIComponent(o.mode);
        if (o.scope) url += '&scope=' + encodeURIComponent(o.scope);
        return url;
      },

      /** Go to the bridge's login route; it comes back to returnTo (default: this page) with a session. */
      login: function (o) {
        var url = api.loginUrl(o);
        win.location.assign(url);
        return url;
      }
    };
    return api;
  }

  if (typeof module === 'object' && module.exports) {
    module.exports = { create: create, detectEnv: detectEnv, stripFragment: stripFragment };
  }
  if (global && global.document && !global.wxbridge) {
    global.wxbridge = create(global);
    // Start at once when the tag carries data-tenant, so wx.config is under way before the page asks.
    var current = global.document.currentScript;
    var tagged = current && current.getAttribute && current.getAttribute('data-tenant');
    if (tagged) global.wxbridge.ready().catch(function () { /* reported to whoever calls ready() */ });
  }
})(typeof window !== 'undefined' ? window : this);
