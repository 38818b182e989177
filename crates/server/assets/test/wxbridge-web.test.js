// Tests of wxbridge-web.js with Node's built-in runner and a fake window / wx:
//   node --test crates/server/assets/test/
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');

const sdk = require(path.join(__dirname, '..', 'wxbridge-web.js'));

const UA_WECOM = 'Mozilla/5.0 (iPhone; CPU iPhone OS 16_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) ' +
  'Mobile/15E148 MicroMessenger/7.0.1 NetType/WIFI Language/zh wxwork/4.1.10';
const UA_WECHAT = 'Mozilla/5.0 (Linux; Android 13) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/107.0 ' +
  'Mobile Safari/537.36 MicroMessenger/8.0.40.2420(0x28002837) NetType/WIFI Language/zh_CN';
const UA_CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36';

const WECOM_CONFIG = {
  provider: 'wecom',
  app: 'main',
  url: 'https://app.example.com/page?x=1',
  config: { beta: true, appId: 'ww1436e0e65a779aee', timestamp: 1700000000, nonceStr: 'n1', signature: 'sig1' },
  agent_config: { corpid: 'ww1436e0e65a779aee', agentid: 1000002, timestamp: 1700000000, nonceStr: 'n1', signature: 'sig2' }
};
const WECHAT_CONFIG = {
  provider: 'wechat',
  app: 'oa',
  url: 'https://app.example.com/page?x=1',
  config: { appId: 'wx0000000000000001', timestamp: 1700000000, nonceStr: 'n2', signature: 'sig3' }
};

/** A fake jweixin: records calls; wx.ready / wx.error fire after config as `outcome` says. */
function fakeWx(outcome = {}) {
  const calls = [];
  let onReady = null;
  let onError = null;
  return {
    calls,
    config(c) {
      calls.push(['config', c]);
      setImmediate(() => {
        if (outcome.configError) onError && onError({ errMsg: outcome.configError });
        else onReady && onReady();
      });
    },
    ready(cb) { calls.push(['ready']); onReady = cb; },
    error(cb) { calls.push(['error']); onError = cb; },
    agentConfig(c) {
      calls.push(['agentConfig', c]);
      setImmediate(() => {
        if (outcome.agentError) c.fail({ errMsg: outcome.agentError });
        else c.success({ errMsg: 'agentConfig:ok' });
      });
    }
  };
}

/** A fake window with a user agent, a page URL, a fetch answering `answer` and (optionally) wx. */
function fakeWindow({ ua, href = 'https://app.example.com/page?x=1#/route?y=2', answer, wx, document } = {}) {
  const fetches = [];
  const assigned = [];
  const win = {
    navigator: { userAgent: ua },
    location: { href, assign(u) { assigned.push(u); } },
    fetch: async (url, init) => {
      fetches.push({ url, init });
      const a = typeof answer === 'function' ? answer(url) : answer;
      if (!a) throw new Error('unexpected fetch ' + url);
      return { ok: a.status === 200, status: a.status, json: async () => a.body };
    },
    wx,
    document
  };
  return { win, fetches, assigned };
}

const BRIDGE = { bridge: 'https://bridge.example.com/', tenant: 'acme', wecomApp: 'main', wechatApp: 'oa' };

test('detects WeCom before WeChat (WeCom also says MicroMessenger), and other browsers', () => {
  assert.equal(sdk.detectEnv(UA_WECOM), 'wecom');
  assert.equal(sdk.detectEnv(UA_WECHAT), 'wechat');
  assert.equal(sdk.detectEnv(UA_CHROME), 'other');
  assert.equal(sdk.detectEnv(undefined), 'other');
});

test('drops the fragment and keeps the query', () => {
  assert.equal(sdk.stripFragment('https://a.example.com/p?q=1#/x?y'), 'https://a.example.com/p?q=1');
  assert.equal(sdk.stripFragment('https://a.example.com/p'), 'https://a.example.com/p');
});

test('in WeCom: fetches the config for the page without its fragment, then wx.config, then wx.agentConfig', async () => {
  const wx = fakeWx();
  const { win, fetches } = fakeWindow({ ua: UA_WECOM, answer: { status: 200, body: WECOM_CONFIG }, wx });
  const bridge = sdk.create(win);
  assert.equal(bridge.env(), 'wecom');
  const r = await bridge.init({ ...BRIDGE, jsApiList: ['scanQRCode'], agentJsApiList: ['selectExternalContact'] });
  assert.equal(r.env, 'wecom');
  assert.equal(r.provider, 'wecom');
  assert.equal(r.app, 'main');

  assert.equal(fetches.length, 1);
  const u = new URL(fetches[0].url);
  assert.equal(u.origin + u.pathname, 'https://bridge.example.com/api/v1/tenants/acme/jssdk/config');
  assert.equal(u.searchParams.get('provider'), 'wecom');
  assert.equal(u.searchParams.get('app'), 'main');
  assert.equal(u.searchParams.get('url'), 'https://app.example.com/page?x=1');
  assert.equal(fetches[0].init.credentials, 'omit');

  const names = wx.calls.map((c) => c[0]);
  assert.deepEqual(names, ['ready', 'error', 'config', 'agentConfig']);
  const config = wx.calls[2][1];
  assert.deepEqual(config, { debug: false, jsApiList: ['scanQRCode'], ...WECOM_CONFIG.config });
  const agent = wx.calls[3][1];
  assert.equal(agent.corpid, 'ww1436e0e65a779aee');
  assert.equal(agent.agentid, 1000002);
  assert.equal(agent.signature, 'sig2');
  assert.equal(agent.nonceStr, 'n1');
  assert.deepEqual(agent.jsApiList, ['selectExternalContact']);
  assert.equal(typeof agent.success, 'function');

  // init and ready give the same promise; nothing is fetched again.
  assert.equal(bridge.init(BRIDGE), bridge.ready());
  await bridge.ready();
  assert.equal(fetches.length, 1);
});

test('in WeChat: the official account, wx.config only', async () => {
  const wx = fakeWx();
  const { win, fetches } = fakeWindow({ ua: UA_WECHAT, answer: { status: 200, body: WECHAT_CONFIG }, wx });
  const r = await sdk.create(win).init(BRIDGE);
  assert.equal(r.env, 'wechat');
  assert.equal(r.app, 'oa');
  assert.equal(new URL(fetches[0].url).searchParams.get('provider'), 'wechat');
  assert.equal(new URL(fetches[0].url).searchParams.get('app'), 'oa');
  assert.deepEqual(wx.calls.map((c) => c[0]), ['ready', 'error', 'config']);
  assert.equal(wx.calls[2][1].signature, 'sig3');
  assert.equal(wx.calls[2][1].beta, undefined);
});

test('elsewhere: nothing is fetched and ready resolves with env "other"', async () => {
  const { win, fetches } = fakeWindow({ ua: UA_CHROME });
  const r = await sdk.create(win).init(BRIDGE);
  assert.deepEqual(r, { env: 'other', provider: null, app: null, config: null });
  assert.equal(fetches.length, 0);
});

test('a refusal from the bridge rejects ready with its code and message', async () => {
  const wx = fakeWx();
  const body = { error: { code: 'url_not_allowed', message: 'JS004 host `evil.com` is not among ...' } };
  const { win } = fakeWindow({ ua: UA_WECOM, answer: { status: 400, body }, wx });
  await assert.rejects(sdk.create(win).init(BRIDGE), (e) => {
    assert.match(e.message, /^wxbridge: jssdk config refused \(400 url_not_allowed\): JS004 host `evil.com`/);
    assert.equal(e.code, 'url_not_allowed');
    assert.equal(e.status, 400);
    return true;
  });
  assert.equal(wx.calls.length, 0, 'wx.config is not called with a refused config');
});

test('wx.error and a failed wx.agentConfig reject ready', async () => {
  let { win } = fakeWindow({
    ua: UA_WECHAT, answer: { status: 200, body: WECHAT_CONFIG }, wx: fakeWx({ configError: 'config:invalid signature' })
  });
  await assert.rejects(sdk.create(win).init(BRIDGE), /wx.config failed: config:invalid signature/);
  ({ win } = fakeWindow({
    ua: UA_WECOM, answer: { status: 200, body: WECOM_CONFIG }, wx: fakeWx({ agentError: 'agentConfig:fail' })
  }));
  await assert.rejects(sdk.create(win).init(BRIDGE), /wx.agentConfig failed: agentConfig:fail/);
});

test('inside WeCom without a WeCom app: a clear error, no fetch', async () => {
  const { win, fetches } = fakeWindow({ ua: UA_WECOM, wx: fakeWx() });
  await assert.rejects(sdk.create(win).init({ bridge: 'https://b', tenant: 'acme', wechatApp: 'oa' }),
    /running inside WeCom but no wecomApp was given/);
  assert.equal(fetches.length, 0);
  await assert.rejects(sdk.create(win).init({ tenant: 'acme' }), /init needs \{ bridge \}/);
  await assert.rejects(sdk.create(win).ready(), /call wxbridge.init/);
});

test('loads jweixin when the page has not', async () => {
  const appended = [];
  const document = {
    createElement: (tag) => ({ tag }),
    head: { appendChild: (el) => { appended.push(el); setImmediate(() => { win.wx = fakeWx(); el.onload(); }); } }
  };
  const { win } = fakeWindow({ ua: UA_WECHAT, answer: { status: 200, body: WECHAT_CONFIG }, document });
  const r = await sdk.create(win).init(BRIDGE);
  assert.equal(r.env, 'wechat');
  assert.equal(appended.length, 1);
  assert.equal(appended[0].src, 'https://res.wx.qq.com/open/js/jweixin-1.6.0.js');
  assert.equal(win.wx.calls.filter((c) => c[0] === 'config').length, 1);
});

test('reads tenant, apps and the bridge origin from its script tag', async () => {
  const attrs = { 'data-tenant': 'acme', 'data-wecom-app': 'main', 'data-js-api-list': 'scanQRCode, getLocation' };
  const document = {
    currentScript: { src: 'https://bridge.example.com/sdk/wxbridge-web.js', getAttribute: (n) => attrs[n] ?? null }
  };
  const wx = fakeWx();
  const { win, fetches } = fakeWindow({ ua: UA_WECOM, answer: { status: 200, body: WECOM_CONFIG }, wx, document });
  const bridge = sdk.create(win);
  document.currentScript = null; // as after the script ran
  await bridge.ready();
  assert.ok(fetches[0].url.startsWith('https://bridge.example.com/api/v1/tenants/acme/jssdk/config?provider=wecom&app=main&'));
  assert.deepEqual(wx.calls[2][1].jsApiList, ['scanQRCode', 'getLocation']);
});

test('login goes to the bridge route of the environment with return_to', () => {
  const returnTo = 'https://app.example.com/after?a=1&b=2#x';
  const encoded = encodeURIComponent(returnTo);

  let { win, assigned } = fakeWindow({ ua: UA_WECOM });
  let b = sdk.create(win);
  b.init(BRIDGE).catch(() => {});
  assert.equal(b.login({ returnTo }), `https://bridge.example.com/auth/acme/wecom/main/login?return_to=${encoded}`);
  assert.deepEqual(assigned, [`https://bridge.example.com/auth/acme/wecom/main/login?return_to=${encoded}`]);

  ({ win } = fakeWindow({ ua: UA_WECHAT }));
  b = sdk.create(win);
  b.init(BRIDGE).catch(() => {});
  assert.equal(b.loginUrl({ returnTo, scope: 'userinfo' }),
    `https://bridge.example.com/auth/acme/wechat/oa/login?return_to=${encoded}&scope=userinfo`);

  // Elsewhere: the WeCom app's QR login when there is one, else WeChat's website QR login.
  ({ win } = fakeWindow({ ua: UA_CHROME, href: 'https://app.example.com/here' }));
  b = sdk.create(win);
  b.init(BRIDGE);
  assert.equal(b.loginUrl({ mode: 'qr' }),
    'https://bridge.example.com/auth/acme/wecom/main/login?return_to=' +
    encodeURIComponent('https://app.example.com/here') + '&mode=qr');
  b = sdk.create(win);
  b.init({ bridge: 'https://bridge.example.com', tenant: 'acme', wechatApp: 'oa' });
  assert.equal(b.loginUrl({ returnTo }), `https://bridge.example.com/auth/acme/wechat/website/login?return_to=${encoded}`);
  assert.throws(() => b.loginUrl({ provider: 'alipay' }), /provider must be "wecom" or "wechat"/);
  assert.throws(() => sdk.create(win).loginUrl(), /call wxbridge.init/);
});
