// wxbridge admin UI: one ES module, no build step, no external resources.
// Every text from the API is put into the page with textContent (through `h`), never as HTML.
// Routing is by hash: #/signin, #/tenants, #/t/{tenant}/{page}/...

'use strict';

const root = document.getElementById('app');

const S = {
  me: null, // {operator, csrf, tenants}
  csrf: '',
  gen: 0, // bumped at every navigation: stale async renders check it
  cleanups: [], // closers of the current page (EventSource, timers)
  tree: new Map(), // tenant -> {roles, byId, children, loadedAt}
  expanded: new Map(), // tenant -> Set of expanded role ids
  navOpen: false,
};

// ---------------------------------------------------------------------------------------------------------
// DOM helpers

/** Element builder. Children that are strings become text nodes; `on*` props become listeners. */
function h(tag, props, ...kids) {
  const el = document.createElement(tag);
  if (props) {
    for (const [k, v] of Object.entries(props)) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = String(v);
      else if (k === 'dataset') Object.assign(el.dataset, v);
      else if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
      else if (typeof v === 'boolean' || typeof v === 'number' || k === 'value') el[k] = v;
      else el.setAttribute(k, v);
    }
  }
  append(el, kids);
  return el;
}

function append(el, kids) {
  for (const kid of kids.flat(Infinity)) {
    if (kid === null || kid === undefined || kid === false) continue;
    el.append(kid instanceof Node ? kid : String(kid));
  }
  return el;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

function enc(s) {
  return encodeURIComponent(String(s));
}

function link(href, text, cls) {
  return h('a', { href, class: cls }, text);
}

function fmtTime(ms) {
  if (ms === null || ms === undefined) return '—';
  const d = new Date(ms);
  return d.toLocaleString(undefined, {
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit',
  });
}

function fmtDuration(ms) {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return '—';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(1)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${Math.round(s % 60)} s`;
  return `${Math.floor(m / 60)} h ${m % 60} min`;
}

function fmtNum(n) {
  if (n === null || n === undefined) return '—';
  return Number(n).toLocaleString();
}

function badge(text, tone) {
  return h('span', { class: `badge badge-${tone || toneOf(text)}` }, text);
}

function toneOf(status) {
  switch (String(status)) {
    case 'succeeded': case 'sent': case 'ok': case 'recalled': case 'active': case 'cached': case 'valid':
      return 'good';
    case 'running': case 'queued': case 'sending': case 'pending': case 'dry_run':
      return 'info';
    case 'partial': case 'warning': case 'expiring': case 'already_recalled': case 'skipped': case 'disabled':
      return 'warn';
    case 'failed': case 'error': case 'invalid': case 'dead': case 'aborted': case 'left': case 'missing':
      return 'bad';
    default:
      return 'neutral';
  }
}

function card(title, ...kids) {
  return h('section', { class: 'card' }, title ? h('h2', { class: 'card-title' }, title) : null, kids);
}

function errorBox(err) {
  const box = h('div', { class: 'alert alert-error', role: 'alert' });
  if (err instanceof ApiError) {
    append(box, [h('strong', null, err.message), err.code ? h('span', { class: 'muted code' }, ` (${err.code})`) : null]);
  } else {
    append(box, [h('strong', null, String(err && err.message ? err.message : err))]);
  }
  return box;
}

function notice(text, tone) {
  return h('div', { class: `alert alert-${tone || 'info'}`, role: tone === 'error' ? 'alert' : 'status' }, text);
}

function loading(text) {
  return h('p', { class: 'loading' }, text || 'Loading…');
}

/** A table that collapses to cards on narrow screens: every cell carries its column name. */
function table(columns, rows, opts) {
  const o = opts || {};
  const thead = h('thead', null, h('tr', null, columns.map((c) => h('th', { scope: 'col', class: c.class }, c.label))));
  const tbody = h('tbody');
  const pageSize = o.pageSize || Infinity;
  let shown = 0;
  const more = h('button', { class: 'button button-quiet show-more', type: 'button' });
  const showMore = () => {
    const end = Math.min(rows.length, shown + pageSize);
    for (; shown < end; shown += 1) {
      const row = rows[shown];
      const tr = h('tr', o.rowClass ? { class: o.rowClass(row) } : null);
      for (const c of columns) {
        const v = c.render(row);
        // One wrapper per cell: on phones the cell is a two-column grid (label, value), and a value made of
        // several nodes (badge + text) stays in the value column instead of spilling under the label.
        tr.append(h('td', { dataset: { label: c.label }, class: c.class },
          h('div', { class: 'cell' }, v === null || v === undefined || v === '' ? '—' : v)));
      }
      tbody.append(tr);
    }
    const left = rows.length - shown;
    more.textContent = `Show ${fmtNum(Math.min(left, pageSize))} more (${fmtNum(left)} left)`;
    more.classList.toggle('hidden', left <= 0);
  };
  more.addEventListener('click', showMore);
  showMore();
  const t = h('table', { class: 'table responsive' }, thead, tbody);
  if (rows.length === 0) {
    return h('div', null, t, h('p', { class: 'empty' }, o.empty || 'Nothing yet.'));
  }
  return h('div', null, h('div', { class: 'table-wrap' }, t), more);
}

function dl(pairs) {
  const d = h('dl', { class: 'facts' });
  for (const [k, v] of pairs) {
    if (v === undefined) continue;
    d.append(h('div', { class: 'fact' }, h('dt', null, k), h('dd', null, v === null || v === '' ? '—' : v)));
  }
  return d;
}

function stat(label, value, tone) {
  return h('div', { class: `stat${tone ? ` stat-${tone}` : ''}` },
    h('div', { class: 'stat-value' }, value === null || value === undefined ? '—' : fmtNum(value)),
    h('div', { class: 'stat-label' }, label));
}

// ---------------------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(status, code, message, body) {
    super(message);
    this.status = status;
    this.code = code;
    this.body = body;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (S.csrf) headers['X-CSRF-Token'] = S.csrf;
  const init = { method, headers, credentials: 'same-origin', cache: 'no-store' };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, 'network', `The bridge did not answer (${e.message}).`);
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  const detail = data && data.error ? data.error : null;
  if (res.status === 401 && !path.startsWith('/admin/api/login')) {
    const hadSession = S.me !== null;
    S.me = null;
    S.csrf = '';
    navigate(hadSession ? '#/signin?reason=session_expired' : '#/signin');
    throw new ApiError(401, detail ? detail.code : 'admin_session_required', detail ? detail.message : 'Please sign in.', data);
  }
  if (!res.ok) {
    const message = detail ? detail.message : `${res.status} ${res.statusText || 'request failed'}`;
    throw new ApiError(res.status, detail ? detail.code : `http_${res.status}`, message, data);
  }
  return data;
}

const tApi = (t, rest) => `/api/v1/tenants/${enc(t)}${rest}`;
const aApi = (t, rest) => `/admin/api/tenants/${enc(t)}${rest}`;

// ---------------------------------------------------------------------------------------------------------
// Routing

function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/';
  const q = raw.indexOf('?');
  const pathPart = q >= 0 ? raw.slice(0, q) : raw;
  const query = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : '');
  const parts = pathPart.split('/').filter(Boolean).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      return p;
    }
  });
  return { parts, query };
}

function cleanup() {
  for (const f of S.cleanups.splice(0)) {
    try {
      f();
    } catch {
      // a closer that fails leaves nothing to do
    }
  }
}

async function loadMe() {
  const me = await api('GET', '/admin/api/me');
  S.me = me;
  S.csrf = me.csrf || '';
  return me;
}

function defaultHash() {
  const ts = (S.me && S.me.tenants) || [];
  if (ts.length === 1) return `#/t/${enc(ts[0].key)}/dashboard`;
  return '#/tenants';
}

const PAGES = [
  { key: 'dashboard', label: 'Dashboard', render: pageDashboard },
  { key: 'directory', label: 'Directory', render: pageDirectory },
  { key: 'sync', label: 'Sync', render: pageSync },
  { key: 'messages', label: 'Messages', render: pageMessages },
  { key: 'graph', label: 'Account graph', render: pageGraph },
  { key: 'setup', label: 'Setup', render: pageSetup },
];

async function route() {
  cleanup();
  const gen = ++S.gen;
  const alive = () => gen === S.gen;
  const { parts, query } = parseHash();
  S.navOpen = false;

  if (parts[0] === 'signin') {
    renderSignIn(query, alive);
    return;
  }
  if (!S.me) {
    try {
      await loadMe();
    } catch (e) {
      if (!alive()) return;
      if (e instanceof ApiError && e.status === 401) return; // api() already went to sign-in
      renderFatal(e);
      return;
    }
    if (!alive()) return;
  }
  if (parts.length === 0) {
    navigate(defaultHash());
    return;
  }
  if (parts[0] === 'tenants') {
    renderShell(null, null, (main) => pageTenants(main));
    return;
  }
  if (parts[0] === 't' && parts[1]) {
    const tenant = parts[1];
    const known = S.me.tenants.find((x) => x.key === tenant);
    const pageKey = parts[2] || 'dashboard';
    const page = PAGES.find((p) => p.key === pageKey);
    if (!known) {
      renderShell(null, null, (main) => append(main, [
        h('h1', null, 'Unknown tenant'),
        notice(`There is no tenant "${tenant}" in your sign-in scope.`, 'error'),
        link('#/tenants', 'Choose a tenant'),
      ]));
      return;
    }
    if (!page) {
      renderShell(known, null, (main) => append(main, [
        h('h1', null, 'Not found'),
        notice(`There is no page "${pageKey}".`, 'error'),
      ]));
      return;
    }
    const ctx = { tenant, tenantInfo: known, rest: parts.slice(3), query, alive };
    renderShell(known, page.key, (main) => page.render(ctx, main));
    return;
  }
  navigate(defaultHash());
}

window.addEventListener('hashchange', route);

// ---------------------------------------------------------------------------------------------------------
// Shell: sidebar on wide screens, top bar + menu on phones

function renderShell(tenant, activePage, fill) {
  clear(root);
  const shell = h('div', { class: 'shell' });
  const menuBtn = h('button', {
    class: 'menu-button', type: 'button', 'aria-label': 'Menu', 'aria-expanded': 'false', 'aria-controls': 'nav',
  }, h('span', { class: 'menu-icon', 'aria-hidden': 'true' }));
  const topbar = h('header', { class: 'topbar' }, menuBtn,
    h('a', { class: 'brand', href: defaultHash() }, 'wxbridge'),
    tenant ? h('span', { class: 'topbar-tenant' }, tenant.name || tenant.key) : null);

  const nav = h('nav', { class: 'sidebar', id: 'nav', 'aria-label': 'Main' });
  nav.append(h('a', { class: 'brand sidebar-brand', href: defaultHash() }, 'wxbridge', h('span', { class: 'brand-sub' }, 'admin')));
  const tenants = S.me.tenants || [];
  if (tenant) {
    if (tenants.length > 1) {
      const sel = h('select', { class: 'tenant-select', 'aria-label': 'Tenant' },
        tenants.map((t) => h('option', { value: t.key }, `${t.name || t.key} (${t.key})`)));
      sel.value = tenant.key;
      sel.addEventListener('change', () => navigate(`#/t/${enc(sel.value)}/${activePage || 'dashboard'}`));
      nav.append(h('div', { class: 'nav-tenant' }, h('div', { class: 'nav-label' }, 'Tenant'), sel));
    } else {
      nav.append(h('div', { class: 'nav-tenant' }, h('div', { class: 'nav-label' }, 'Tenant'),
        h('div', { class: 'nav-tenant-name' }, tenant.name || tenant.key), h('div', { class: 'muted small' }, tenant.key)));
    }
    const ul = h('ul', { class: 'nav-list' });
    for (const p of PAGES) {
      ul.append(h('li', null, h('a', {
        href: `#/t/${enc(tenant.key)}/${p.key}`,
        class: p.key === activePage ? 'nav-link active' : 'nav-link',
        'aria-current': p.key === activePage ? 'page' : null,
      }, p.label)));
    }
    nav.append(ul);
  }
  if (tenants.length > 1 || !tenant) {
    nav.append(h('a', { class: 'nav-link nav-secondary', href: '#/tenants' }, 'All tenants'));
  }
  const op = S.me.operator || {};
  const signOut = h('button', { class: 'button button-quiet', type: 'button' }, 'Sign out');
  signOut.addEventListener('click', doSignOut);
  nav.append(h('div', { class: 'nav-footer' },
    h('div', { class: 'operator' }, h('div', { class: 'operator-name' }, op.name || 'operator'),
      h('div', { class: 'muted small' }, `${kindLabel(op.kind)} · scope ${op.tenant_scope === '*' ? 'all tenants' : op.tenant_scope || '—'}`)),
    signOut));

  const main = h('main', { class: 'main', id: 'main', tabindex: '-1' });
  const scrim = h('div', { class: 'scrim', 'aria-hidden': 'true' });
  const setOpen = (open) => {
    S.navOpen = open;
    shell.classList.toggle('nav-open', open);
    menuBtn.setAttribute('aria-expanded', open ? 'true' : 'false');
  };
  menuBtn.addEventListener('click', () => setOpen(!S.navOpen));
  scrim.addEventListener('click', () => setOpen(false));
  nav.addEventListener('click', (e) => {
    if (e.target instanceof HTMLAnchorElement) setOpen(false);
  });
  const onKey = (e) => {
    if (e.key === 'Escape' && S.navOpen) {
      setOpen(false);
      menuBtn.focus();
    }
  };
  document.addEventListener('keydown', onKey);
  S.cleanups.push(() => document.removeEventListener('keydown', onKey));
  shell.append(topbar, nav, scrim, main);
  root.append(shell);
  Promise.resolve(fill(main)).catch((e) => {
    if (e instanceof ApiError && e.status === 401) return;
    main.append(errorBox(e));
  });
}

function kindLabel(kind) {
  switch (kind) {
    case 'token': return 'admin token';
    case 'link': return 'one-time link';
    case 'wecom': return 'WeCom';
    default: return kind || 'session';
  }
}

async function doSignOut() {
  try {
    await api('POST', '/admin/api/logout');
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 401)) {
      // The session may be gone already; signing out locally is still right.
    }
  }
  S.me = null;
  S.csrf = '';
  S.tree.clear();
  navigate('#/signin?reason=signed_out');
}

function renderFatal(err) {
  clear(root);
  root.append(h('div', { class: 'center-page' }, h('div', { class: 'card signin-card' },
    h('h1', null, 'wxbridge admin'), errorBox(err),
    h('p', null, link('#/signin', 'Go to sign-in')))));
}

// ---------------------------------------------------------------------------------------------------------
// Sign-in

const REASONS = {
  signed_out: ['You are signed out.', 'info'],
  session_expired: ['Your session ended. Please sign in again.', 'warn'],
  link_used: ['That sign-in link was already used. Ask for a new one (wxbridge admin link).', 'error'],
  link_expired: ['That sign-in link has expired. Ask for a new one (wxbridge admin link).', 'error'],
  link_invalid: ['That sign-in link is not valid. Ask for a new one (wxbridge admin link).', 'error'],
  not_admin: ['Your WeCom account is not an administrator of this tenant.', 'error'],
  wecom_failed: ['The WeCom sign-in did not complete. Please try again.', 'error'],
};

async function renderSignIn(query, alive) {
  clear(root);
  const body = h('div', { class: 'card signin-card' },
    h('h1', { class: 'signin-title' }, 'wxbridge', h('span', { class: 'brand-sub' }, 'admin')),
    h('p', { class: 'muted' }, 'Sign in to manage tenants, the directory, sync and messages.'));
  root.append(h('div', { class: 'center-page' }, body));
  const reason = query.get('reason');
  if (reason) {
    const [text, tone] = REASONS[reason] || [`Sign-in failed (${reason}).`, 'error'];
    body.append(notice(text, tone));
  }
  const slot = h('div', null, loading());
  body.append(slot);
  let options;
  try {
    options = await api('GET', '/admin/api/login/options');
  } catch (e) {
    if (!alive()) return;
    clear(slot).append(errorBox(e));
    return;
  }
  if (!alive()) return;
  clear(slot);
  const wecom = (options.tenants || []).filter((t) => t.wecom_login);
  if (wecom.length) {
    const list = h('div', { class: 'stack' });
    for (const t of wecom) {
      list.append(h('a', {
        class: 'button button-primary button-block wecom-login',
        href: `/admin/login/wecom?tenant=${enc(t.key)}`,
        dataset: { tenant: t.key },
      }, wecom.length > 1 ? `Sign in with WeCom — ${t.name || t.key}` : 'Sign in with WeCom'));
    }
    slot.append(list);
  }
  if (options.token_login) {
    if (wecom.length) slot.append(h('div', { class: 'divider' }, h('span', null, 'or')));
    const input = h('input', {
      type: 'password', id: 'admin-token', name: 'token', autocomplete: 'off', spellcheck: 'false',
      placeholder: 'wxa_…', required: true,
    });
    const msg = h('div');
    const submit = h('button', { class: 'button button-block', type: 'submit' }, 'Sign in with admin token');
    const form = h('form', { class: 'stack', id: 'token-form' },
      h('label', { for: 'admin-token' }, 'Bootstrap admin token'), input, submit, msg);
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      clear(msg);
      const token = input.value.trim();
      if (!token) {
        msg.append(notice('Enter the admin token.', 'error'));
        return;
      }
      submit.disabled = true;
      try {
        const r = await api('POST', '/admin/api/login/token', { token });
        S.csrf = (r && r.csrf) || '';
        await loadMe();
        input.value = '';
        navigate(defaultHash());
      } catch (err) {
        msg.append(errorBox(err));
      } finally {
        submit.disabled = false;
      }
    });
    slot.append(form);
  }
  if (!wecom.length && !options.token_login) {
    slot.append(h('div', { class: 'alert alert-warn' }, 'No sign-in method is configured here. Open a one-time link from ', h('code', null, 'wxbridge admin link'), '.'));
  } else {
    slot.append(h('p', { class: 'muted small' }, 'A one-time link from ', h('code', null, 'wxbridge admin link'), ' signs you in directly.'));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Tenant picker

function pageTenants(main) {
  main.append(h('h1', null, 'Tenants'));
  const ts = S.me.tenants || [];
  if (!ts.length) {
    main.append(notice('No tenant is in your sign-in scope.', 'warn'));
    return;
  }
  const grid = h('div', { class: 'tenant-grid' });
  for (const t of ts) {
    grid.append(h('a', { class: 'card tenant-card', href: `#/t/${enc(t.key)}/dashboard` },
      h('div', { class: 'tenant-name' }, t.name || t.key),
      h('div', { class: 'muted' }, t.key),
      t.wecom_login ? h('div', { class: 'small muted' }, 'WeCom sign-in enabled') : null));
  }
  main.append(grid);
}

// ---------------------------------------------------------------------------------------------------------
// Dashboard

async function pageDashboard(ctx, main) {
  const head = h('div', { class: 'page-head' }, h('h1', null, 'Dashboard'));
  const refresh = h('button', { class: 'button', type: 'button' }, 'Refresh');
  head.append(refresh);
  const body = h('div', null, loading());
  main.append(head, body);
  const load = async () => {
    let d;
    try {
      d = await api('GET', aApi(ctx.tenant, '/dashboard'));
    } catch (e) {
      if (ctx.alive()) clear(body).append(errorBox(e));
      return;
    }
    if (!ctx.alive()) return;
    clear(body);
    const grid = h('div', { class: 'grid' });
    const cb = d.callbacks || {};
    grid.append(card('Callbacks',
      h('div', { class: 'stats' },
        stat('received (24 h)', cb.received_24h),
        stat('pending', cb.pending, cb.pending ? 'info' : null),
        stat('failed', cb.failed, cb.failed ? 'warn' : null),
        stat('dead', cb.dead, cb.dead ? 'bad' : null))));
    const ob = d.outbox || {};
    grid.append(card('Message outbox',
      h('div', { class: 'stats' },
        stat('sent (24 h)', ob.sent_24h),
        stat('pending', ob.pending, ob.pending ? 'info' : null),
        stat('failed', ob.failed, ob.failed ? 'bad' : null)),
      h('p', null, link(`#/t/${enc(ctx.tenant)}/messages`, 'Delivery log →'))));
    const wh = d.webhooks;
    grid.append(card('Webhooks', wh
      ? h('div', { class: 'stats' }, stat('pending', wh.pending, wh.pending ? 'info' : null), stat('dead', wh.dead, wh.dead ? 'bad' : null))
      : h('p', { class: 'muted' }, 'No webhook is configured for this tenant.')));
    grid.append(card('Last sync', lastSyncView(ctx, d.last_sync)));
    body.append(grid);
    body.append(card('Token health', tokensTable(d.tokens || [])));
  };
  refresh.addEventListener('click', load);
  await load();
}

function lastSyncView(ctx, run) {
  if (!run) {
    return h('div', null, h('p', { class: 'muted' }, 'No sync has run yet.'),
      link(`#/t/${enc(ctx.tenant)}/sync`, 'Start one →'));
  }
  const c = run.counters || {};
  const u = c.users || {};
  return h('div', null,
    h('p', null, link(`#/t/${enc(ctx.tenant)}/sync/run/${run.id}`, `Run #${run.id}`), ' ', badge(run.status),
      run.dry_run ? badge('dry run', 'info') : null),
    dl([
      ['Started', fmtTime(run.started_at_ms)],
      ['Finished', run.finished_at_ms ? fmtTime(run.finished_at_ms) : 'still running'],
      ['Users', `+${fmtNum(u.created)} ~${fmtNum(u.updated)} −${fmtNum(u.removed)}`],
      ['Error', run.error || null],
    ]));
}

function tokensTable(tokens) {
  return table([
    { label: 'Credential', render: (t) => h('span', null, h('strong', null, t.name || t.app || '—'), t.owner ? h('span', { class: 'muted small block' }, t.owner) : null) },
    { label: 'Kind', render: (t) => kindOfCredential(t.kind) },
    { label: 'State', render: (t) => tokenState(t) },
    { label: 'Expires in', render: (t) => (t.expires_in_secs === undefined || t.expires_in_secs === null ? '—' : fmtDuration(t.expires_in_secs * 1000)) },
    { label: 'Last error', render: (t) => (t.last_error ? `${t.last_error_code !== undefined && t.last_error_code !== null ? `${t.last_error_code}: ` : ''}${t.last_error}` : null) },
  ], tokens, { empty: 'This tenant has no credentials.' });
}

function kindOfCredential(kind) {
  const names = {
    wecom_app: 'WeCom app', wecom_contacts: 'WeCom contacts', official_account: 'Official account',
    wechat_mini_program: 'Mini program', website: 'Website app',
  };
  return names[kind] || kind || '—';
}

function tokenState(t) {
  if (t.state) return badge(t.state);
  if (t.last_error) return badge('error', 'bad');
  if (t.kind === 'website') return badge('no token', 'neutral');
  return t.cached ? badge('cached', 'good') : badge('not fetched', 'neutral');
}

// ---------------------------------------------------------------------------------------------------------
// Directory

async function roleTree(tenant, force) {
  const cached = S.tree.get(tenant);
  if (cached && !force && Date.now() - cached.loadedAt < 60_000) return cached;
  const d = await api('GET', aApi(tenant, '/roles/tree'));
  const roles = d.roles || [];
  const byId = new Map();
  const children = new Map();
  for (const r of roles) byId.set(r.id, r);
  const roots = [];
  for (const r of roles) {
    if (r.parent_id !== null && r.parent_id !== undefined && byId.has(r.parent_id)) {
      if (!children.has(r.parent_id)) children.set(r.parent_id, []);
      children.get(r.parent_id).push(r);
    } else {
      roots.push(r);
    }
  }
  const tree = { roles, byId, children, roots, loadedAt: Date.now() };
  S.tree.set(tenant, tree);
  return tree;
}

function expandedOf(tenant) {
  if (!S.expanded.has(tenant)) S.expanded.set(tenant, new Set());
  return S.expanded.get(tenant);
}

async function pageDirectory(ctx, main) {
  const t = ctx.tenant;
  const base = `#/t/${enc(t)}/directory`;
  main.append(h('div', { class: 'page-head' }, h('h1', null, 'Directory')));

  // Search by name / mobile / email
  const field = h('select', { 'aria-label': 'Search by', id: 'search-field' },
    h('option', { value: 'q' }, 'Name'), h('option', { value: 'mobile' }, 'Mobile'), h('option', { value: 'email' }, 'Email'));
  const q = h('input', { type: 'search', id: 'search-input', placeholder: 'Search people', 'aria-label': 'Search people', autocomplete: 'off' });
  const searchForm = h('form', { class: 'inline-form', id: 'search-form' }, field, q, h('button', { class: 'button button-primary', type: 'submit' }, 'Search'));
  searchForm.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = q.value.trim();
    if (!v) return;
    navigate(`${base}/search?${new URLSearchParams({ by: field.value, q: v })}`);
  });

  // Both-way lookup
  const wuid = h('input', { type: 'text', id: 'lookup-userid', placeholder: 'e.g. zhangsan', autocomplete: 'off', 'aria-label': 'WeCom userid' });
  const wdep = h('input', { type: 'text', id: 'lookup-department', inputmode: 'numeric', placeholder: 'e.g. 1', autocomplete: 'off', 'aria-label': 'WeCom department id' });
  const lookupMsg = h('div');
  const userForm = h('form', { class: 'inline-form', id: 'lookup-user-form' },
    h('label', { for: 'lookup-userid' }, 'WeCom userid → user'), wuid, h('button', { class: 'button', type: 'submit' }, 'Find'));
  const depForm = h('form', { class: 'inline-form', id: 'lookup-department-form' },
    h('label', { for: 'lookup-department' }, 'WeCom department → role'), wdep, h('button', { class: 'button', type: 'submit' }, 'Find'));
  userForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(lookupMsg);
    const v = wuid.value.trim();
    if (!v) return;
    try {
      const u = await api('GET', tApi(t, `/wecom/users/${enc(v)}`));
      navigate(`${base}/user/${u.id}`);
    } catch (err) {
      lookupMsg.append(errorBox(err));
    }
  });
  depForm.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(lookupMsg);
    const v = wdep.value.trim();
    if (!/^\d+$/.test(v)) {
      lookupMsg.append(notice('A WeCom department id is a number.', 'error'));
      return;
    }
    try {
      const r = await api('GET', tApi(t, `/wecom/departments/${enc(v)}`));
      navigate(`${base}/role/${r.id}`);
    } catch (err) {
      lookupMsg.append(errorBox(err));
    }
  });
  main.append(h('div', { class: 'toolbar card' }, searchForm, h('div', { class: 'lookups' }, userForm, depForm), lookupMsg));

  const treeBox = h('div', { class: 'tree-box' }, loading('Loading roles…'));
  const detail = h('div', { class: 'detail', id: 'directory-detail' });
  const treeToggle = h('button', { class: 'button button-quiet tree-toggle', type: 'button', 'aria-expanded': 'true' }, 'Hide');
  const treeCard = h('section', { class: 'card tree-card' }, h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, 'Roles'), treeToggle), treeBox);
  treeToggle.addEventListener('click', () => {
    const collapsed = treeCard.classList.toggle('collapsed');
    treeToggle.setAttribute('aria-expanded', collapsed ? 'false' : 'true');
    treeToggle.textContent = collapsed ? 'Show' : 'Hide';
  });
  main.append(h('div', { class: 'split' }, treeCard, detail));

  const [kind, id] = ctx.rest;
  let selectedRole = null;
  if (kind === 'role' && id) selectedRole = Number(id);
  if (kind && kind !== 'role') {
    treeCard.classList.add('collapsed');
    treeToggle.setAttribute('aria-expanded', 'false');
    treeToggle.textContent = 'Show';
  }

  // The tree (not awaited first: the detail loads in parallel)
  const treePromise = roleTree(t, false).then((tree) => {
    if (!ctx.alive()) return;
    if (selectedRole !== null) {
      const exp = expandedOf(t);
      let r = tree.byId.get(selectedRole);
      while (r && r.parent_id !== null && r.parent_id !== undefined) {
        exp.add(r.parent_id);
        r = tree.byId.get(r.parent_id);
      }
    }
    renderTree(clear(treeBox), tree, t, selectedRole);
  }).catch((e) => {
    if (ctx.alive()) clear(treeBox).append(errorBox(e));
  });

  if (kind === 'role' && id) await roleDetail(ctx, detail, Number(id));
  else if (kind === 'user' && id) await userDetail(ctx, detail, Number(id));
  else if (kind === 'search') {
    field.value = ctx.query.get('by') || 'q';
    q.value = ctx.query.get('q') || '';
    await searchResults(ctx, detail, field.value, q.value);
  } else {
    detail.append(card(null, h('p', { class: 'muted' }, 'Pick a role in the tree to see its members, search for a person, or look a WeCom userid or department up.')));
  }
  await treePromise;
}

function renderTree(box, tree, tenant, selected) {
  const exp = expandedOf(tenant);
  if (!tree.roots.length) {
    box.append(h('p', { class: 'empty' }, 'No roles yet. Run a sync first.'));
    return;
  }
  const build = (nodes, depth) => {
    const ul = h('ul', { class: depth === 0 ? 'tree' : 'tree-children', role: depth === 0 ? 'tree' : 'group' });
    for (const r of nodes) {
      const kids = tree.children.get(r.id) || [];
      const open = exp.has(r.id) || (depth === 0 && !exp.has(-r.id) && tree.roots.length === 1);
      const li = h('li', { role: 'treeitem', 'aria-expanded': kids.length ? String(open) : null, class: 'tree-item' });
      const row = h('div', { class: `tree-row${r.id === selected ? ' selected' : ''}` });
      if (kids.length) {
        const tog = h('button', {
          class: 'tree-toggle-btn', type: 'button', 'aria-label': `${open ? 'Collapse' : 'Expand'} ${r.name}`,
        }, h('span', { class: open ? 'chev open' : 'chev', 'aria-hidden': 'true' }));
        tog.addEventListener('click', () => {
          if (open) {
            exp.delete(r.id);
            if (depth === 0) exp.add(-r.id);
          } else {
            exp.add(r.id);
            exp.delete(-r.id);
          }
          renderTree(clear(box), tree, tenant, selected);
        });
        row.append(tog);
      } else {
        row.append(h('span', { class: 'tree-spacer' }));
      }
      row.append(h('a', { class: 'tree-link', href: `#/t/${enc(tenant)}/directory/role/${r.id}` },
        h('span', { class: 'tree-name' }, r.name),
        r.origin === 'wecom_tag' ? badge('tag', 'neutral') : null,
        h('span', { class: 'count' }, fmtNum(r.member_count))));
      li.append(row);
      if (kids.length && open) li.append(build(kids, depth + 1));
      ul.append(li);
    }
    return ul;
  };
  box.append(build(tree.roots, 0));
}

async function roleDetail(ctx, box, roleId) {
  const t = ctx.tenant;
  const sub = ctx.query.get('sub') === '1';
  box.append(loading());
  let role;
  let members;
  try {
    [role, members] = await Promise.all([
      api('GET', tApi(t, `/roles/${roleId}`)),
      api('GET', tApi(t, `/roles/${roleId}/members?sub_roles=${sub}&limit=1000`)),
    ]);
  } catch (e) {
    if (ctx.alive()) clear(box).append(errorBox(e));
    return;
  }
  if (!ctx.alive()) return;
  clear(box);
  let parent = null;
  const tree = S.tree.get(t);
  if (role.parent_id !== null && role.parent_id !== undefined) {
    const p = tree && tree.byId.get(role.parent_id);
    parent = link(`#/t/${enc(t)}/directory/role/${role.parent_id}`, p ? p.name : `#${role.parent_id}`);
  }
  const dep = role.wecom_department;
  box.append(card(null,
    h('div', { class: 'detail-head' }, h('h2', { class: 'detail-title', id: 'role-name' }, role.name),
      role.archived ? badge('archived', 'warn') : null, badge(role.origin, 'neutral')),
    dl([
      ['Role id', String(role.id)],
      ['Parent', parent],
      ['WeCom department', dep ? h('span', { id: 'role-department' }, `${dep.department_id}`, h('span', { class: 'muted small' }, ` in ${dep.corpid}`)) : 'not a WeCom department'],
      ['Updated', fmtTime(role.updated_at_ms)],
    ])));

  const subBox = h('input', { type: 'checkbox', id: 'members-sub', checked: sub });
  subBox.addEventListener('change', () => {
    navigate(`#/t/${enc(t)}/directory/role/${roleId}${subBox.checked ? '?sub=1' : ''}`);
  });
  const roleName = (id) => {
    const r = tree && tree.byId.get(id);
    return r ? r.name : `#${id}`;
  };
  const cols = [
    { label: 'Name', render: (m) => link(`#/t/${enc(t)}/directory/user/${m.user.id}`, m.user.name) },
    { label: 'Position', render: (m) => m.user.position },
    { label: 'Status', render: (m) => (m.user.status === 'active' ? null : badge(m.user.status)) },
    { label: 'In role', render: (m) => (m.role_id === roleId ? 'this role' : link(`#/t/${enc(t)}/directory/role/${m.role_id}`, roleName(m.role_id))) },
    { label: 'Flags', render: (m) => [m.is_leader ? badge('leader', 'info') : null, m.is_main ? badge('main', 'neutral') : null] },
  ];
  box.append(card(`Members (${fmtNum(members.total)})`,
    h('label', { class: 'check' }, subBox, ' Include members of sub-roles'),
    members.truncated ? notice(`Showing the first ${members.members.length} of ${fmtNum(members.total)}.`, 'info') : null,
    table(cols, members.members, { empty: 'No members.', pageSize: 50 })));
}

async function userDetail(ctx, box, userId) {
  const t = ctx.tenant;
  box.append(loading());
  let user;
  let roles;
  let ids;
  try {
    [user, roles, ids] = await Promise.all([
      api('GET', tApi(t, `/users/${userId}`)),
      api('GET', tApi(t, `/users/${userId}/roles`)),
      api('GET', tApi(t, `/users/${userId}/identities`)),
    ]);
  } catch (e) {
    if (ctx.alive()) clear(box).append(errorBox(e));
    return;
  }
  if (!ctx.alive()) return;
  clear(box);
  const genders = { male: 'male', female: 'female', unknown: 'unknown' };
  box.append(card(null,
    h('div', { class: 'detail-head' },
      // Avatars live on WeCom's CDN, which the page's CSP (default-src 'self') does not load: an initial instead.
      h('span', { class: 'avatar avatar-letter', 'aria-hidden': 'true' }, Array.from(user.name || '?')[0]),
      h('h2', { class: 'detail-title', id: 'user-name' }, user.name), badge(user.status)),
    dl([
      ['User id', String(user.id)],
      ['Position', user.position],
      ['Mobile', user.mobile],
      ['Email', user.email],
      ['Gender', user.gender ? genders[user.gender] || user.gender : null],
      ['Updated', fmtTime(user.updated_at_ms)],
    ])));
  box.append(card('WeCom', table([
    { label: 'userid', render: (w) => h('code', { class: 'wecom-userid' }, w.userid) },
    { label: 'Corp', render: (w) => h('code', null, w.corpid) },
    { label: 'open_userid', render: (w) => (w.open_userid ? h('code', null, w.open_userid) : null) },
  ], user.wecom || [], { empty: 'Not linked to a WeCom member.' })));
  box.append(card('Roles', table([
    { label: 'Role', render: (r) => link(`#/t/${enc(t)}/directory/role/${r.role.id}`, r.role.name) },
    { label: 'WeCom department', render: (r) => (r.role.wecom_department ? String(r.role.wecom_department.department_id) : null) },
    { label: 'Flags', render: (r) => [r.is_leader ? badge('leader', 'info') : null, r.is_main ? badge('main', 'neutral') : null, r.role.archived ? badge('archived', 'warn') : null] },
    { label: 'Since', render: (r) => fmtTime(r.since_ms) },
  ], roles.roles || [], { empty: 'No roles.' })));
  box.append(card('WeChat identities', table([
    { label: 'App', render: (w) => h('span', null, h('code', null, w.appid), h('span', { class: 'muted small block' }, w.app_kind)) },
    { label: 'openid', render: (w) => h('code', null, w.openid) },
    { label: 'unionid', render: (w) => (w.unionid ? h('code', null, w.unionid) : null) },
    { label: 'Subscribed', render: (w) => (w.subscribed === undefined || w.subscribed === null ? null : w.subscribed ? 'yes' : 'no') },
  ], ids.wechat || [], { empty: 'No WeChat identity.' })));
}

async function searchResults(ctx, box, by, value) {
  const t = ctx.tenant;
  const v = (value || '').trim();
  if (!v) return;
  box.append(loading('Searching…'));
  let found;
  try {
    found = await api('GET', tApi(t, `/users?${new URLSearchParams({ [by]: v, limit: '100' })}`));
  } catch (e) {
    if (ctx.alive()) clear(box).append(errorBox(e));
    return;
  }
  if (!ctx.alive()) return;
  clear(box);
  const label = { q: 'name', mobile: 'mobile', email: 'email' }[by] || by;
  box.append(card(`People by ${label} “${v}” (${found.users.length})`, table([
    { label: 'Name', render: (u) => link(`#/t/${enc(t)}/directory/user/${u.id}`, u.name) },
    { label: 'WeCom userid', render: (u) => (u.wecom && u.wecom.length ? u.wecom.map((w) => w.userid).join(', ') : null) },
    { label: 'Position', render: (u) => u.position },
    { label: 'Mobile', render: (u) => u.mobile },
    { label: 'Email', render: (u) => u.email },
    { label: 'Status', render: (u) => badge(u.status) },
  ], found.users, { empty: 'Nobody matches.', pageSize: 50 })));
}

// ---------------------------------------------------------------------------------------------------------
// Sync

const PHASES = ['departments', 'members', 'diff', 'apply', 'tags'];

async function pageSync(ctx, main) {
  const t = ctx.tenant;
  main.append(h('div', { class: 'page-head' }, h('h1', null, 'Directory sync')));
  const override = h('input', { type: 'checkbox', id: 'override-guard' });
  const startBtn = h('button', { class: 'button button-primary', type: 'button', id: 'start-sync' }, 'Start sync');
  const dryBtn = h('button', { class: 'button', type: 'button', id: 'start-dry-run' }, 'Dry run');
  const msg = h('div');
  main.append(card(null,
    h('p', { class: 'muted' }, 'A full sync reads the WeCom directory and brings roles, users and memberships up to date. A dry run shows what would change and writes nothing.'),
    h('div', { class: 'actions' }, startBtn, dryBtn),
    h('label', { class: 'check' }, override, ' Override the removal guard (allow removing more than the configured share)'),
    msg));
  const runBox = h('div', { id: 'run-box' });
  const history = h('div', null, loading());
  main.append(runBox, card('History', history));

  const start = async (dry) => {
    clear(msg);
    startBtn.disabled = true;
    dryBtn.disabled = true;
    try {
      const r = await api('POST', tApi(t, '/sync'), { dry_run: dry, override_guard: override.checked });
      navigate(`#/t/${enc(t)}/sync/run/${r.run_id}`);
    } catch (e) {
      msg.append(errorBox(e));
      const running = e instanceof ApiError && e.body && e.body.error && e.body.error.run_id;
      if (running) msg.append(h('p', null, link(`#/t/${enc(t)}/sync/run/${running}`, `Watch run #${running} →`)));
    } finally {
      startBtn.disabled = false;
      dryBtn.disabled = false;
    }
  };
  startBtn.addEventListener('click', () => start(false));
  dryBtn.addEventListener('click', () => start(true));

  const loadHistory = async () => {
    let d;
    try {
      d = await api('GET', tApi(t, '/sync/runs?limit=50'));
    } catch (e) {
      if (ctx.alive()) clear(history).append(errorBox(e));
      return;
    }
    if (!ctx.alive()) return;
    clear(history).append(runsTable(t, d.runs || []));
  };
  if (ctx.rest[0] === 'run' && ctx.rest[1]) {
    watchRun(ctx, runBox, Number(ctx.rest[1]), loadHistory);
  }
  await loadHistory();
}

function counterText(c) {
  if (!c) return '—';
  return `+${fmtNum(c.created)} ~${fmtNum(c.updated)} −${fmtNum(c.removed)}`;
}

function runsTable(t, runs) {
  return table([
    { label: 'Run', render: (r) => link(`#/t/${enc(t)}/sync/run/${r.id}`, `#${r.id}`) },
    { label: 'Status', render: (r) => [badge(r.status), r.dry_run ? ' ' : null, r.dry_run ? badge('dry run', 'info') : null] },
    { label: 'Started', render: (r) => fmtTime(r.started_at_ms) },
    { label: 'Took', render: (r) => (r.finished_at_ms ? fmtDuration(r.finished_at_ms - r.started_at_ms) : 'running') },
    { label: 'Users', class: 'num', render: (r) => counterText(r.counters && r.counters.users) },
    { label: 'Roles', class: 'num', render: (r) => counterText(r.counters && r.counters.roles) },
    { label: 'Memberships', class: 'num', render: (r) => counterText(r.counters && r.counters.memberships) },
    { label: 'Error', render: (r) => (r.error ? h('span', { class: 'error-text' }, r.error) : null) },
  ], runs, { empty: 'No sync has run yet.' });
}

function watchRun(ctx, box, runId, onFinished) {
  const t = ctx.tenant;
  const statusEl = h('span', { id: 'run-status' }, badge('connecting', 'neutral'));
  const phaseEl = h('span', { id: 'run-phase', class: 'phase-name' }, '—');
  const bar = h('div', { class: 'bar-fill' });
  const barBox = h('div', {
    class: 'bar indeterminate', role: 'progressbar', 'aria-valuemin': '0', 'aria-valuemax': '100', id: 'run-progress',
    'aria-label': 'Phase progress',
  }, bar);
  const doneEl = h('span', { id: 'run-done' }, '');
  const rateEl = h('span', { id: 'run-rate' }, '');
  const etaEl = h('span', { id: 'run-eta' }, '');
  const counts = {};
  const countsEl = h('div', { class: 'stats', id: 'run-counts' },
    ['created', 'updated', 'removed', 'unchanged'].map((k) => {
      const v = h('div', { class: 'stat-value' }, '0');
      counts[k] = v;
      return h('div', { class: 'stat' }, v, h('div', { class: 'stat-label' }, k));
    }));
  const steps = {};
  const stepsEl = h('ol', { class: 'steps' }, PHASES.map((p) => {
    const li = h('li', { class: 'step' }, p);
    steps[p] = li;
    return li;
  }));
  const errorsList = h('ul', { class: 'item-errors' });
  const errorsHead = h('h3', { class: 'small-title hidden' }, 'Item errors');
  const resultEl = h('div', { id: 'run-result' });
  const dryEl = h('span');
  box.append(card(null,
    h('div', { class: 'detail-head' }, h('h2', { class: 'detail-title' }, `Run #${runId}`), statusEl, dryEl),
    stepsEl,
    h('div', { class: 'progress-line' }, h('span', null, 'Phase: ', phaseEl), doneEl),
    barBox,
    h('div', { class: 'progress-meta muted' }, rateEl, etaEl),
    countsEl,
    errorsHead, errorsList,
    resultEl));

  let current = null;
  let errorCount = 0;
  let finished = false;
  const setPhase = (phase) => {
    current = phase;
    phaseEl.textContent = phase;
    let seen = true;
    for (const p of PHASES) {
      steps[p].classList.remove('active');
      if (p === phase) {
        steps[p].classList.add('active');
        seen = false;
      } else if (seen) {
        steps[p].classList.add('done');
      }
    }
  };
  const setBar = (done, total) => {
    if (total) {
      const pct = Math.min(100, Math.round((done / total) * 100));
      barBox.classList.remove('indeterminate');
      bar.style.width = `${pct}%`;
      barBox.setAttribute('aria-valuenow', String(pct));
      doneEl.textContent = `${fmtNum(done)} / ${fmtNum(total)} (${pct}%)`;
    } else {
      barBox.classList.add('indeterminate');
      barBox.removeAttribute('aria-valuenow');
      bar.style.width = '';
      doneEl.textContent = done ? fmtNum(done) : '';
    }
  };

  const es = new EventSource(tApi(t, `/sync/runs/${runId}/events`));
  S.cleanups.push(() => es.close());
  statusEl.replaceChildren(badge('running', 'info'));
  es.addEventListener('progress', (m) => {
    let ev;
    try {
      ev = JSON.parse(m.data);
    } catch {
      return;
    }
    const k = ev.kind || {};
    switch (k.type) {
      case 'started':
        if (k.dry_run) dryEl.replaceChildren(badge('dry run', 'info'));
        break;
      case 'phase':
        setPhase(k.phase);
        setBar(0, k.total);
        for (const key of Object.keys(counts)) counts[key].textContent = '0';
        rateEl.textContent = '';
        etaEl.textContent = '';
        break;
      case 'advanced':
        if (k.phase !== current) setPhase(k.phase);
        setBar(k.done, k.total);
        for (const key of Object.keys(counts)) counts[key].textContent = fmtNum(k[key]);
        rateEl.textContent = k.rate_per_s ? `${fmtNum(Math.round(k.rate_per_s))} items/s` : '';
        etaEl.textContent = k.eta_ms !== null && k.eta_ms !== undefined ? ` · about ${fmtDuration(k.eta_ms)} left` : '';
        break;
      case 'item_error':
        errorCount += 1;
        errorsHead.classList.remove('hidden');
        if (errorCount <= 100) {
          errorsList.append(h('li', null, h('code', null, `${k.phase} ${k.item}`), k.code !== null && k.code !== undefined ? ` errcode ${k.code}: ` : ': ', k.message));
        }
        break;
      case 'finished':
        finished = true;
        es.close();
        showFinished(k);
        break;
      default:
        break;
    }
  });
  es.addEventListener('error', () => {
    if (finished) return;
    if (es.readyState === EventSource.CLOSED) {
      statusEl.replaceChildren(badge('disconnected', 'warn'));
      resultEl.replaceChildren(notice('The progress stream closed. Reload the page to follow the run again.', 'warn'));
    }
  });

  const showFinished = (k) => {
    statusEl.replaceChildren(badge(k.status));
    box.querySelector('.card').dataset.finished = k.status;
    for (const p of PHASES) steps[p].classList.remove('active');
    if (k.status === 'succeeded') {
      barBox.classList.remove('indeterminate');
      bar.style.width = '100%';
      barBox.setAttribute('aria-valuenow', '100');
    }
    rateEl.textContent = '';
    etaEl.textContent = '';
    const rows = Object.entries(k.counters || {}).map(([phase, c]) => ({ phase, ...c }));
    const dry = dryEl.textContent.includes('dry');
    append(clear(resultEl), [
      h('h3', { class: 'small-title' }, dry ? 'Diff summary (dry run: nothing was written)' : 'Result'),
      table([
        { label: 'Phase', render: (r) => r.phase },
        { label: dry ? 'Would create' : 'Created', class: 'num', render: (r) => fmtNum(r.created) },
        { label: dry ? 'Would update' : 'Updated', class: 'num', render: (r) => fmtNum(r.updated) },
        { label: dry ? 'Would remove' : 'Removed', class: 'num', render: (r) => fmtNum(r.removed) },
        { label: 'Unchanged', class: 'num', render: (r) => fmtNum(r.unchanged) },
      ], rows, { empty: 'Nothing was counted.' }),
      k.item_errors ? notice(`${fmtNum(k.item_errors)} item error(s).`, 'warn') : null,
      k.error ? notice(k.error, 'error') : null]);
    S.tree.delete(t);
    if (onFinished) onFinished();
  };
}

// ---------------------------------------------------------------------------------------------------------
// Messages

async function pageMessages(ctx, main) {
  const t = ctx.tenant;
  main.append(h('div', { class: 'page-head' }, h('h1', null, 'Messages')));
  const composeBox = h('div');
  const logBox = h('div', null, loading());
  const refresh = h('button', { class: 'button button-quiet', type: 'button' }, 'Refresh');
  main.append(composeBox, h('section', { class: 'card' },
    h('div', { class: 'card-head' }, h('h2', { class: 'card-title' }, 'Delivery log'), refresh), logBox));

  let pollTimer = null;
  const loadLog = async () => {
    if (pollTimer) {
      clearTimeout(pollTimer);
      pollTimer = null;
    }
    let d;
    try {
      // The admin delivery log: the tenant API's messages plus each call's userids and department ids.
      d = await api('GET', aApi(t, '/messages?limit=50'));
    } catch (e) {
      if (ctx.alive()) clear(logBox).append(errorBox(e));
      return;
    }
    if (!ctx.alive()) return;
    const msgs = d.messages || [];
    clear(logBox).append(deliveryLog(ctx, msgs, loadLog));
    if (msgs.some((m) => m.status === 'queued' || m.status === 'sending')) {
      pollTimer = setTimeout(loadLog, 1500);
    }
  };
  S.cleanups.push(() => pollTimer && clearTimeout(pollTimer));
  refresh.addEventListener('click', loadLog);

  let tokens = [];
  try {
    const d = await api('GET', tApi(t, '/tokens'));
    tokens = d.tokens || [];
  } catch {
    tokens = [];
  }
  if (!ctx.alive()) return;
  composeBox.append(composeForm(ctx, tokens.filter((x) => x.kind === 'wecom_app').map((x) => x.name), loadLog));
  await loadLog();
}

function composeForm(ctx, apps, onSent) {
  const t = ctx.tenant;
  const appSel = apps.length
    ? h('select', { id: 'msg-app' }, apps.map((a) => h('option', { value: a }, a)))
    : h('input', { id: 'msg-app', type: 'text', placeholder: 'app key', autocomplete: 'off' });
  const kind = h('select', { id: 'msg-kind' },
    h('option', { value: 'text' }, 'Text'), h('option', { value: 'markdown' }, 'Markdown'), h('option', { value: 'textcard' }, 'Text card'));
  const content = h('textarea', { id: 'msg-content', rows: '4', maxlength: '2048', placeholder: 'Message text' });
  const title = h('input', { id: 'msg-title', type: 'text', maxlength: '128', autocomplete: 'off' });
  const description = h('textarea', { id: 'msg-description', rows: '3', maxlength: '512' });
  const url = h('input', { id: 'msg-url', type: 'url', placeholder: 'https://…', autocomplete: 'off' });
  const btntxt = h('input', { id: 'msg-btntxt', type: 'text', maxlength: '4', placeholder: '详情', autocomplete: 'off' });
  const textFields = h('div', { class: 'field' }, h('label', { for: 'msg-content' }, 'Content'), content);
  const cardFields = h('div', { class: 'hidden stack' },
    h('div', { class: 'field' }, h('label', { for: 'msg-title' }, 'Title'), title),
    h('div', { class: 'field' }, h('label', { for: 'msg-description' }, 'Description'), description),
    h('div', { class: 'field' }, h('label', { for: 'msg-url' }, 'Link'), url),
    h('div', { class: 'field' }, h('label', { for: 'msg-btntxt' }, 'Button text (optional)'), btntxt));
  kind.addEventListener('change', () => {
    const isCard = kind.value === 'textcard';
    cardFields.classList.toggle('hidden', !isCard);
    textFields.classList.toggle('hidden', isCard);
  });

  // Recipients
  const selected = []; // {type:'user'|'role', id, name, sub}
  const everyone = h('input', { type: 'checkbox', id: 'msg-everyone' });
  const chips = h('ul', { class: 'chips', id: 'msg-recipients', 'aria-label': 'Recipients' });
  const pickInput = h('input', { type: 'search', id: 'msg-pick', placeholder: 'Search people or roles', autocomplete: 'off', 'aria-label': 'Search people or roles' });
  const pickResults = h('ul', { class: 'pick-results', id: 'msg-pick-results' });
  const picker = h('div', { class: 'picker' }, pickInput, pickResults);
  const renderChips = () => {
    clear(chips);
    for (const s of selected) {
      const rm = h('button', { class: 'chip-remove', type: 'button', 'aria-label': `Remove ${s.name}` }, '×');
      rm.addEventListener('click', () => {
        selected.splice(selected.indexOf(s), 1);
        renderChips();
      });
      let subBox = null;
      if (s.type === 'role') {
        subBox = h('input', { type: 'checkbox', checked: s.sub, class: 'chip-sub' });
        subBox.addEventListener('change', () => {
          s.sub = subBox.checked;
        });
      }
      chips.append(h('li', { class: `chip chip-${s.type}`, dataset: { kind: s.type, id: String(s.id) } },
        h('span', { class: 'chip-kind' }, s.type === 'role' ? 'role' : 'user'),
        h('span', { class: 'chip-name' }, s.name),
        subBox ? h('label', { class: 'chip-check' }, subBox, ' sub-roles') : null,
        rm));
    }
    if (!selected.length) chips.append(h('li', { class: 'muted small' }, 'No recipients yet.'));
  };
  renderChips();
  const add = (s) => {
    if (!selected.some((x) => x.type === s.type && x.id === s.id)) selected.push(s);
    renderChips();
    clear(pickResults);
    pickInput.value = '';
    pickInput.focus();
  };
  let searchSeq = 0;
  const doSearch = async () => {
    const v = pickInput.value.trim();
    const my = ++searchSeq;
    if (!v) {
      clear(pickResults);
      return;
    }
    const results = [];
    try {
      const tree = await roleTree(t, false);
      const lower = v.toLowerCase();
      for (const r of tree.roles) {
        if (r.name.toLowerCase().includes(lower)) results.push({ type: 'role', id: r.id, name: r.name, extra: `${fmtNum(r.member_count)} members`, sub: true });
        if (results.length >= 8) break;
      }
      const users = await api('GET', tApi(t, `/users?${new URLSearchParams({ q: v, limit: '10' })}`));
      for (const u of users.users || []) {
        results.push({ type: 'user', id: u.id, name: u.name, extra: [u.position, (u.wecom || []).map((w) => w.userid).join(', ')].filter(Boolean).join(' · ') });
      }
    } catch (e) {
      if (my === searchSeq) clear(pickResults).append(h('li', null, errorBox(e)));
      return;
    }
    if (my !== searchSeq) return;
    clear(pickResults);
    if (!results.length) pickResults.append(h('li', { class: 'muted small pick-empty' }, 'No match.'));
    for (const r of results) {
      const b = h('button', { type: 'button', class: 'pick-item', dataset: { kind: r.type, id: String(r.id) } },
        h('span', { class: 'chip-kind' }, r.type), h('span', { class: 'pick-name' }, r.name), r.extra ? h('span', { class: 'muted small' }, r.extra) : null);
      b.addEventListener('click', () => add({ type: r.type, id: r.id, name: r.name, sub: r.type === 'role' }));
      pickResults.append(h('li', null, b));
    }
  };
  let debounce = null;
  pickInput.addEventListener('input', () => {
    clearTimeout(debounce);
    debounce = setTimeout(doSearch, 250);
  });
  pickInput.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') {
      e.preventDefault();
      clearTimeout(debounce);
      doSearch();
    }
  });
  everyone.addEventListener('change', () => {
    picker.classList.toggle('disabled', everyone.checked);
    pickInput.disabled = everyone.checked;
    chips.classList.toggle('disabled', everyone.checked);
  });

  const msg = h('div', { id: 'msg-result' });
  const send = h('button', { class: 'button button-primary', type: 'submit', id: 'msg-send' }, 'Send');
  const form = h('form', { class: 'stack', id: 'compose-form', novalidate: 'novalidate' },
    h('div', { class: 'form-row' },
      h('div', { class: 'field' }, h('label', { for: 'msg-app' }, 'WeCom app'), appSel),
      h('div', { class: 'field' }, h('label', { for: 'msg-kind' }, 'Kind'), kind)),
    h('fieldset', { class: 'field' }, h('legend', null, 'Recipients'),
      h('label', { class: 'check' }, everyone, ' Everyone the app can see'),
      chips, picker),
    textFields, cardFields,
    h('div', { class: 'actions' }, send), msg);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clear(msg);
    const problems = [];
    const app = appSel.value.trim();
    if (!app) problems.push('Choose the WeCom app to send through.');
    if (!everyone.checked && !selected.length) problems.push('Add at least one recipient, or choose everyone.');
    let message;
    if (kind.value === 'textcard') {
      if (!title.value.trim()) problems.push('A text card needs a title.');
      if (!description.value.trim()) problems.push('A text card needs a description.');
      if (!/^https?:\/\/\S+$/.test(url.value.trim())) problems.push('A text card needs a link starting with http:// or https://.');
      message = { kind: 'textcard', title: title.value.trim(), description: description.value.trim(), url: url.value.trim() };
      if (btntxt.value.trim()) message.btntxt = btntxt.value.trim();
    } else {
      if (!content.value.trim()) problems.push('Write the message.');
      message = { kind: kind.value, content: content.value };
    }
    if (problems.length) {
      msg.append(h('div', { class: 'alert alert-error', role: 'alert' }, h('ul', null, problems.map((p) => h('li', null, p)))));
      return;
    }
    const to = everyone.checked
      ? { all: true }
      : {
        users: selected.filter((s) => s.type === 'user').map((s) => s.id),
        roles: selected.filter((s) => s.type === 'role').map((s) => ({ id: s.id, sub_roles: s.sub })),
      };
    const body = { app, idempotency_key: newKey(), to, message };
    send.disabled = true;
    try {
      const r = await api('POST', tApi(t, '/messages'), body);
      msg.append(notice(`Message #${r.message_id} accepted; it is in the delivery log below.`, 'success'));
      content.value = '';
      title.value = '';
      description.value = '';
      url.value = '';
      btntxt.value = '';
      selected.splice(0);
      renderChips();
      onSent();
    } catch (err) {
      msg.append(errorBox(err));
    } finally {
      send.disabled = false;
    }
  });
  return card('Compose', form);
}

function newKey() {
  if (window.crypto && typeof window.crypto.randomUUID === 'function') return `admin-${window.crypto.randomUUID()}`;
  const b = new Uint8Array(16);
  window.crypto.getRandomValues(b);
  return `admin-${Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('')}`;
}

function deliveryLog(ctx, msgs, reload) {
  const t = ctx.tenant;
  const recipientsOf = (m) => {
    const parts = [];
    const calls = m.calls || [];
    for (const c of calls) {
      const bits = [];
      if (c.all) bits.push('everyone');
      if (c.userids && c.userids.length) bits.push(h('span', { class: 'userids' }, c.userids.join(', ')));
      else if (c.users) bits.push(`${fmtNum(c.users)} user(s)`);
      if (c.department_ids && c.department_ids.length) bits.push(`departments ${c.department_ids.join(', ')}`);
      else if (c.departments) bits.push(`${fmtNum(c.departments)} department(s)`);
      parts.push(h('div', { class: 'call' }, calls.length > 1 ? h('span', { class: 'muted small' }, `call ${c.seq + 1} `) : null, badge(c.status), ' ',
        bits.map((b, i) => [i ? ' · ' : null, b]),
        c.recalled_at_ms ? [' ', badge('recalled', 'neutral')] : null,
        c.error ? h('div', { class: 'error-text small' }, c.error) : null));
    }
    return parts.length ? parts : null;
  };
  const invalidOf = (m) => {
    const inv = m.invalid_recipients || [];
    if (!inv.length) return null;
    return h('ul', { class: 'plain' }, inv.map((r) => h('li', null,
      link(`#/t/${enc(t)}/directory/${r.kind === 'role' ? 'role' : 'user'}/${r.id}`, `${r.kind} ${r.id}`), ': ', r.reason)));
  };
  const actionsOf = (m) => {
    const recallable = (m.calls || []).some((c) => c.status === 'sent' && c.msgid && !c.recalled_at_ms);
    if (!recallable || String(m.msgtype).startsWith('wechat_')) return null;
    const b = h('button', { class: 'button button-small', type: 'button', dataset: { recall: String(m.id) } }, 'Recall');
    const out = h('div', { class: 'small' });
    b.addEventListener('click', async () => {
      if (!window.confirm(`Recall message #${m.id} from every recipient?`)) return;
      b.disabled = true;
      clear(out);
      try {
        const r = await api('POST', tApi(t, `/messages/${m.id}/recall`));
        out.append(...(r.results || []).map((x) => h('div', null, `call ${x.seq}: `, badge(x.result), x.error ? ` ${x.error}` : '')));
        setTimeout(reload, 800);
      } catch (e) {
        out.append(errorBox(e));
        b.disabled = false;
      }
    });
    return h('div', null, b, out);
  };
  return table([
    { label: 'Message', render: (m) => h('span', null, h('strong', null, `#${m.id}`), h('span', { class: 'muted small block' }, `${m.msgtype} via ${m.app}`)) },
    { label: 'Created', render: (m) => fmtTime(m.created_at_ms) },
    { label: 'Status', render: (m) => [badge(m.status), m.attempts > 1 ? h('span', { class: 'muted small' }, ` ${m.attempts} attempts`) : null, m.error ? h('div', { class: 'error-text small' }, m.error) : null] },
    { label: 'Recipients', render: recipientsOf },
    { label: 'Invalid', render: invalidOf },
    { label: '', render: actionsOf },
  ], msgs, { empty: 'No message has been sent yet.', rowClass: (m) => `msg-row msg-${m.status}` });
}

// ---------------------------------------------------------------------------------------------------------
// Account graph

async function pageGraph(ctx, main) {
  const t = ctx.tenant;
  main.append(h('div', { class: 'page-head' }, h('h1', null, 'WeChat account graph')));
  const q = h('input', { type: 'search', id: 'graph-q', placeholder: 'openid, unionid, appid or name', autocomplete: 'off', 'aria-label': 'Search identities' });
  q.value = ctx.query.get('q') || '';
  const form = h('form', { class: 'inline-form' }, q, h('button', { class: 'button button-primary', type: 'submit' }, 'Search'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const v = q.value.trim();
    navigate(`#/t/${enc(t)}/graph${v ? `?${new URLSearchParams({ q: v })}` : ''}`);
  });
  const idBox = h('div', null, loading());
  const mergeBox = h('div', null, loading());
  main.append(card('Identities', form, idBox), card('Merges', mergeBox));
  const params = new URLSearchParams({ limit: '100' });
  if (q.value.trim()) params.set('q', q.value.trim());
  const [ids, merges] = await Promise.allSettled([
    api('GET', aApi(t, `/graph/identities?${params}`)),
    api('GET', aApi(t, '/graph/merges?limit=100')),
  ]);
  if (!ctx.alive()) return;
  const userLink = (id, name) => (id === null || id === undefined ? null : link(`#/t/${enc(t)}/directory/user/${id}`, name || `user ${id}`));
  clear(idBox);
  if (ids.status === 'rejected') idBox.append(errorBox(ids.reason));
  else {
    const list = Array.isArray(ids.value) ? ids.value : ids.value.identities || [];
    idBox.append(table([
      { label: 'App', render: (w) => h('span', null, h('code', null, w.appid), h('span', { class: 'muted small block' }, w.app_kind)) },
      { label: 'openid', render: (w) => h('code', null, w.openid) },
      { label: 'unionid', render: (w) => (w.unionid ? h('code', null, w.unionid) : null) },
      { label: 'User', render: (w) => userLink(w.user_id, w.user_name) },
      { label: 'Nickname', render: (w) => w.nickname },
      { label: 'Flags', render: (w) => [w.pinned ? badge('pinned', 'info') : null, w.subscribed === true ? badge('subscribed', 'good') : null, w.subscribed === false ? badge('unsubscribed', 'neutral') : null] },
      { label: 'Updated', render: (w) => fmtTime(w.updated_at_ms || w.created_at_ms) },
    ], list, { empty: q.value ? 'No identity matches.' : 'No WeChat identity yet.' }));
  }
  clear(mergeBox);
  if (merges.status === 'rejected') mergeBox.append(errorBox(merges.reason));
  else {
    const list = Array.isArray(merges.value) ? merges.value : merges.value.merges || [];
    mergeBox.append(table([
      { label: 'When', render: (m) => fmtTime(m.at_ms) },
      { label: 'From', render: (m) => userLink(m.from_user, m.from_user_name) },
      { label: 'Into', render: (m) => userLink(m.into_user, m.into_user_name) },
      { label: 'Reason', render: (m) => m.reason },
      { label: 'unionid', render: (m) => (m.unionid ? h('code', null, m.unionid) : null) },
      { label: 'By', render: (m) => m.actor },
      { label: 'Moved', render: (m) => `${fmtNum(Array.isArray(m.identities) ? m.identities.length : m.identities)} identities, ${fmtNum(m.sessions_moved)} sessions` },
    ], list, { empty: 'No merge has happened.' }));
  }
}

// ---------------------------------------------------------------------------------------------------------
// Setup

async function pageSetup(ctx, main) {
  const t = ctx.tenant;
  const head = h('div', { class: 'page-head' }, h('h1', null, 'Setup'));
  const rerun = h('button', { class: 'button', type: 'button' }, 'Check again');
  head.append(rerun);
  const body = h('div', null, loading('Running the checks…'));
  main.append(head, body);
  const load = async () => {
    clear(body).append(loading('Running the checks…'));
    let d;
    try {
      d = await api('GET', aApi(t, '/setup'));
    } catch (e) {
      if (ctx.alive()) clear(body).append(errorBox(e));
      return;
    }
    if (!ctx.alive()) return;
    clear(body);
    const urls = d.callback_urls || d.callbacks || [];
    body.append(card('Callback URLs', h('p', { class: 'muted' }, 'Paste these into the admin consoles.'),
      table([
        { label: 'What', render: (c) => c.what || c.subject },
        { label: 'URL', render: (c) => h('code', { class: 'url' }, c.url) },
        { label: 'Where', render: (c) => c.console_path || c.console },
        { label: '', render: (c) => copyButton(c.url) },
      ], urls, { empty: 'No callback is configured.' })));
    if (d.domains && d.domains.length) {
      body.append(card('Trusted domains', table([
        { label: 'What', render: (x) => x.subject },
        { label: 'Domain', render: (x) => h('code', null, x.domain) },
        { label: 'Where', render: (x) => x.console },
        { label: '', render: (x) => copyButton(x.domain) },
      ], d.domains)));
    }
    const problems = d.problems || [];
    const items = d.items || d.checks || [];
    const bad = problems.filter((p) => p.severity === 'error').length + items.filter((i) => i.status === 'error').length;
    const warn = problems.filter((p) => p.severity === 'warning').length + items.filter((i) => i.status === 'warning').length;
    body.prepend(notice(bad ? `${bad} error(s) and ${warn} warning(s) need attention.` : warn ? `No error; ${warn} warning(s).` : 'Everything checks out.', bad ? 'error' : warn ? 'warn' : 'success'));
    body.append(card('Configuration', table([
      { label: 'Severity', render: (p) => badge(p.severity) },
      { label: 'Key', render: (p) => h('code', null, p.path) },
      { label: 'Problem', render: (p) => p.message },
      { label: 'Hint', render: (p) => p.hint },
    ], problems, { empty: 'No configuration problem.' })));
    body.append(card('Live checks', table([
      { label: 'Status', render: (i) => badge(i.status) },
      { label: 'Subject', render: (i) => i.subject },
      { label: 'Check', render: (i) => i.check },
      { label: 'Detail', render: (i) => [i.detail, i.errcode !== undefined && i.errcode !== null ? h('span', { class: 'muted small' }, ` (errcode ${i.errcode})`) : null] },
      { label: 'Hint', render: (i) => i.hint },
    ], items, { empty: 'No live check ran.' })));
  };
  rerun.addEventListener('click', load);
  await load();
}

function copyButton(text) {
  const b = h('button', { class: 'button button-small copy', type: 'button', dataset: { copy: text } }, 'Copy');
  b.addEventListener('click', async () => {
    let ok = false;
    try {
      if (navigator.clipboard && window.isSecureContext) {
        await navigator.clipboard.writeText(text);
        ok = true;
      }
    } catch {
      ok = false;
    }
    if (!ok) {
      const ta = h('textarea', { class: 'offscreen', readonly: 'readonly' });
      ta.value = text;
      document.body.append(ta);
      ta.select();
      try {
        ok = document.execCommand('copy');
      } catch {
        ok = false;
      }
      ta.remove();
    }
    b.textContent = ok ? 'Copied' : 'Copy failed';
    setTimeout(() => {
      b.textContent = 'Copy';
    }, 1500);
  });
  return b;
}

// ---------------------------------------------------------------------------------------------------------

route();
