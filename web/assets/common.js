// What the voice client, the dashboard and the studio share: the credential (an API key, or
// the tokens of an email and password sign-in) kept in localStorage, so that every tab of the
// browser is signed in at once and a sign-out in one signs out all; calls to the API with it,
// refreshing a sign-in's access token before it expires; the sign-in form; small helpers.
// Everything the server sends is put in the page as text, never as HTML.
'use strict';

const SB = (() => {
  const storageKey = 'switchboard.credential';

  function parseCredential(s) {
    try {
      return JSON.parse(s || 'null');
    } catch {
      return null;
    }
  }

  // credential is {kind: 'key'|'user', token, refresh?, expires? (ms), user?, label}.
  function credential() {
    return parseCredential(localStorage.getItem(storageKey));
  }

  function saveCredential(c) {
    if (c) localStorage.setItem(storageKey, JSON.stringify(c));
    else localStorage.removeItem(storageKey);
    schedule();
  }

  // identity says who a credential is: a tab reloads when another tab signs in as someone
  // else or signs out, and only re-plans its refresh when another tab refreshed the tokens.
  function identity(c) {
    if (!c) return '';
    return c.kind === 'user' ? 'user:' + (c.user || c.label) : 'key:' + c.token;
  }

  addEventListener('storage', (e) => {
    if (e.key !== storageKey && e.key !== null) return; // null: the whole storage was cleared
    if (identity(parseCredential(e.oldValue)) !== identity(credential())) {
      location.reload();
      return;
    }
    schedule();
    arrived();
  });

  function token() {
    const c = credential();
    return c ? c.token : '';
  }

  // withToken adds ?token= to a path, for what cannot send headers (EventSource) and for
  // the WebRTC session routes, whose contract takes the key there.
  function withToken(path) {
    return path + (path.includes('?') ? '&' : '?') + 'token=' + encodeURIComponent(token());
  }

  class APIError extends Error {
    constructor(status, body) {
      const e = body && body.error;
      super(e && e.message ? e.message : 'HTTP ' + status);
      this.status = status;
      this.code = e && e.code;
      this.details = e && e.details;
    }
  }

  async function request(method, path, body) {
    const headers = {Accept: 'application/json'};
    const t = token();
    if (t) headers.Authorization = 'Bearer ' + t;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    const r = await fetch(path, {method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store'});
    const text = await r.text();
    let data = null;
    if (text) {
      try {
        data = JSON.parse(text);
      } catch {
        data = text;
      }
    }
    return {status: r.status, ok: r.ok, data};
  }

  // One tab at a time refreshes the sign-in: the refresher, which holds a Web Lock while it
  // lives (the next tab in line takes over when it closes). A refresh token is good once,
  // and its second use signs the user out everywhere; tabs cannot take turns at it through
  // localStorage alone, as one tab sees another's writes a moment late. The other tabs ask
  // the refresher (a BroadcastChannel) and take the new tokens from storage when they come.
  const channel = typeof BroadcastChannel === 'function' ? new BroadcastChannel(storageKey) : null;
  let refresher = !navigator.locks || !channel; // without either, each tab refreshes for itself
  if (!refresher) {
    navigator.locks.request(storageKey + '.refresher', () => {
      refresher = true;
      schedule();
      // What this tab asked of the refresher before it became the refresher is its own to do.
      for (const w of [...waiting]) refresh(w.stale).then((ok) => w.done(ok, false), () => w.done(false));
      return new Promise(() => {}); // held until the tab closes
    });
    channel.onmessage = (e) => {
      if (refresher && e.data && e.data.stale) refresh(e.data.stale).catch(() => {});
    };
  }
  // waiting are this tab's requests for new tokens that wait for them to reach storage.
  const waiting = new Set();

  // refreshing is the one refresh in flight in this tab, shared by the requests that found
  // the access token expired.
  let refreshing = null;
  // refreshes says what each refresh of this tab did ('refreshed', or 'followed' when the
  // refresher did it): the browser tests read it.
  const refreshes = [];

  // refresh gets new tokens for the sign-in whose access token was stale (the one held now
  // when not given), and reports whether there are some.
  async function refresh(stale) {
    const held = credential();
    if (!held || held.kind !== 'user' || !held.refresh) return false;
    if (stale === undefined) stale = held.token;
    if (held.token !== stale) return true; // refreshed already
    if (!refresher) return follow(stale);
    if (!refreshing) {
      refreshing = (async () => {
        const r = await request('POST', '/api/v1/auth/refresh', {refresh_token: held.refresh});
        if (r.status === 401) {
          // The sign-in is over (expired, or its user was removed): every tab says so.
          saveCredential(null);
          location.reload();
          return false;
        }
        if (!r.ok) return false;
        saveCredential({...held, token: r.data.access_token, refresh: r.data.refresh_token, expires: Date.parse(r.data.expires_at) || 0});
        refreshes.push('refreshed');
        return true;
      })().finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  // follow asks the refresher for new tokens and waits for them to reach this tab's storage.
  function follow(stale) {
    return new Promise((resolve) => {
      const w = {
        stale,
        done(ok, followed = true) {
          if (!waiting.delete(w)) return;
          clearTimeout(w.timer);
          if (ok && followed) refreshes.push('followed');
          resolve(ok);
        },
      };
      w.timer = setTimeout(() => w.done(false), 20_000);
      waiting.add(w);
      channel.postMessage({stale});
    });
  }

  // arrived tells the waiting requests of new tokens in storage (or of none at all).
  function arrived() {
    const c = credential();
    for (const w of [...waiting]) {
      if (!c) w.done(false);
      else if (c.token !== w.stale) w.done(true);
    }
  }

  // schedule plans the refresher's next refresh a minute before the access token expires,
  // so that the pages' event streams, which carry the token in their URL, are not refused
  // on reconnect.
  let timer = 0;
  function schedule() {
    clearTimeout(timer);
    const c = credential();
    if (!refresher || !c || c.kind !== 'user' || !c.expires) return;
    const token = c.token;
    timer = setTimeout(() => refresh(token).catch(() => {}), Math.max(5_000, c.expires - Date.now() - 60_000));
  }

  // api calls the API with the credential and returns the decoded answer; an error answer
  // throws an APIError. An expired access token is refreshed once.
  async function api(method, path, body) {
    const sent = token();
    let r = await request(method, path, body);
    if (r.status === 401 && await refresh(sent)) r = await request(method, path, body);
    if (!r.ok) throw new APIError(r.status, r.data);
    return r.data;
  }

  // el makes an element: attributes (class, data-*, aria-*, hidden…) and children (nodes,
  // or strings that become text).
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  function duration(seconds) {
    if (!Number.isFinite(seconds) || seconds < 0) seconds = 0;
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor(s % 3600 / 60);
    const ss = String(s % 60).padStart(2, '0');
    return h ? h + ':' + String(m).padStart(2, '0') + ':' + ss : m + ':' + ss;
  }

  function clock(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    return isNaN(d) ? '' : d.toLocaleTimeString([], {hour: '2-digit', minute: '2-digit', second: '2-digit'});
  }

  function when(iso) {
    if (!iso) return '';
    const d = new Date(iso);
    if (isNaN(d)) return '';
    const today = new Date().toDateString() === d.toDateString();
    return today ? clock(iso) : d.toLocaleString([], {month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit'});
  }

  function ms(v) {
    return Number.isFinite(v) ? Math.round(v) + ' ms' : '–';
  }

  // signIn shows the sign-in form until a credential works, then calls ready(me) with what
  // /api/v1/auth/me says of it. A credential kept from before is tried first.
  async function signIn(ready) {
    const section = document.getElementById('signin');
    const app = document.getElementById('app');
    const who = document.getElementById('who');
    document.getElementById('signout').addEventListener('click', () => {
      saveCredential(null);
      location.reload();
    });

    const enter = (me) => {
      section.hidden = true;
      app.hidden = false;
      who.hidden = false;
      const c = credential();
      document.getElementById('who-name').textContent = (c && c.label ? c.label + ' · ' : '') + (me.tenant_slug || me.tenant_id);
      ready(me);
    };

    if (credential()) {
      try {
        enter(await api('GET', '/api/v1/auth/me'));
        return;
      } catch (e) {
        if (e.status !== 401 && e.status !== 403) {
          // The server is away (restarting, say) or busy: the sign-in, every tab's, is kept
          // for when it answers.
          console.warn('switchboard: stored credential:', e);
          section.replaceChildren(el('h1', {}, 'Switchboard did not answer'),
            el('p', {class: 'error', role: 'alert'}, e.message),
            el('button', {type: 'button', class: 'primary', id: 'signin-retry', onclick: () => location.reload()}, 'Try again'));
          section.hidden = false;
          return;
        }
        saveCredential(null);
      }
    }

    const error = el('p', {class: 'error', role: 'alert', hidden: true});
    const fail = (msg) => { error.textContent = msg; error.hidden = false; };
    const keyInput = el('input', {id: 'signin-key', name: 'key', type: 'password', autocomplete: 'off', spellcheck: 'false', placeholder: 'as_live_…', required: true});
    const keyForm = el('form', {id: 'signin-key-form'},
      el('label', {for: 'signin-key'}, 'API key'),
      keyInput,
      el('button', {type: 'submit', class: 'primary'}, 'Sign in'));
    const emailInput = el('input', {id: 'signin-email', name: 'email', type: 'email', autocomplete: 'username', required: true});
    const passwordInput = el('input', {id: 'signin-password', name: 'password', type: 'password', autocomplete: 'current-password', required: true});
    const passwordForm = el('form', {id: 'signin-password-form', hidden: true},
      el('label', {for: 'signin-email'}, 'Email'), emailInput,
      el('label', {for: 'signin-password'}, 'Password'), passwordInput,
      el('button', {type: 'submit', class: 'primary'}, 'Sign in'));
    const tabKey = el('button', {type: 'button', role: 'tab', 'aria-selected': 'true', id: 'tab-key'}, 'API key');
    const tabPassword = el('button', {type: 'button', role: 'tab', 'aria-selected': 'false', id: 'tab-password'}, 'Email and password');
    const choose = (key) => {
      tabKey.setAttribute('aria-selected', String(key));
      tabPassword.setAttribute('aria-selected', String(!key));
      keyForm.hidden = !key;
      passwordForm.hidden = key;
      error.hidden = true;
    };
    tabKey.addEventListener('click', () => choose(true));
    tabPassword.addEventListener('click', () => choose(false));

    const attempt = async (form, make) => {
      error.hidden = true;
      for (const b of form.querySelectorAll('button')) b.disabled = true;
      try {
        saveCredential(await make());
        enter(await api('GET', '/api/v1/auth/me'));
      } catch (e) {
        saveCredential(null);
        fail(e.status === 401 ? 'That did not work: ' + e.message : e.message);
      } finally {
        for (const b of form.querySelectorAll('button')) b.disabled = false;
      }
    };
    keyForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      const key = keyInput.value.trim();
      attempt(keyForm, async () => ({kind: 'key', token: key, label: key.slice(0, 12) + '…'}));
    });
    passwordForm.addEventListener('submit', (ev) => {
      ev.preventDefault();
      attempt(passwordForm, async () => {
        const r = await request('POST', '/api/v1/auth/login', {email: emailInput.value.trim(), password: passwordInput.value});
        if (!r.ok) throw new APIError(r.status, r.data);
        const u = r.data.user || {};
        return {kind: 'user', token: r.data.access_token, refresh: r.data.refresh_token, expires: Date.parse(r.data.expires_at) || 0,
          user: u.id, label: u.email};
      });
    });

    section.replaceChildren(
      el('h1', {}, 'Sign in to Switchboard'),
      el('p', {class: 'muted small'}, 'With an API key of your tenant, or the email and password of a user. Every tab of this browser is signed in with it, until you sign out in any of them.'),
      el('div', {class: 'tabs', role: 'tablist'}, tabKey, tabPassword),
      keyForm, passwordForm, error,
      el('div', {class: 'first-run', id: 'signin-help'},
        el('h2', {}, 'No key or user yet?'),
        el('p', {class: 'small'}, 'On the machine that runs Switchboard, make a key (it is printed once):'),
        el('pre', {class: 'mono'}, 'switchboard keys create --name studio'),
        el('p', {class: 'small'}, 'or a user, who signs in with email and password:'),
        el('pre', {class: 'mono'}, 'switchboard users create --email you@example.com --password-stdin'),
        el('p', {class: 'small muted'}, 'Both take the server\'s settings (DATABASE_URL, SWITCHBOARD_DATA_DIR) from the environment, as switchboard serve does.')));
    section.hidden = false;
    keyInput.focus();
  }

  schedule();

  return {api, request, withToken, token, refresh, refreshes, el, duration, clock, when, ms, signIn, APIError};
})();
