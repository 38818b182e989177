// The demo page's script (kept out of the HTML so the page's Content-Security-Policy needs no inline scripts).
(function () {
  'use strict';
  var params = new URLSearchParams(location.search);
  var $ = function (id) { return document.getElementById(id); };
  var options = {
    bridge: location.origin,
    tenant: params.get('tenant') || 'demo',
    wecomApp: params.get('wecom_app') || undefined,
    wechatApp: params.get('wechat_app') || undefined,
    jsApiList: ['scanQRCode', 'getLocation'],
    debug: params.get('debug') === 'true'
  };
  $('env').textContent = wxbridge.env() + ' (' + navigator.userAgent + ')';
  wxbridge.init(options).then(function (r) {
    $('status').textContent = r.env === 'other'
      ? 'not inside WeCom or WeChat: no JS-SDK here'
      : 'configured for ' + r.provider + ' app ' + r.app;
    $('status').className = 'ok';
    if (r.config) $('details').textContent = JSON.stringify(r.config, null, 2);
  }, function (e) {
    $('status').textContent = e.message;
    $('status').className = 'err';
  });
  $('login').addEventListener('click', function () {
    try {
      wxbridge.login({ returnTo: location.href });
    } catch (e) {
      $('status').textContent = e.message;
      $('status').className = 'err';
    }
  });
})();
