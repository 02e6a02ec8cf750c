// What the voice client and the dashboard share: the credential (an API key, or the tokens
// of an email and password sign-in) kept in sessionStorage, calls to the API with it, the
// sign-in form, and small helpers. Everything the server sends is put in the page as text,
// never as HTML.
'use strict';

const SB = (() => {
  const storageKey = 'switchboard.credential';

  // credential is {kind: 'key'|'user', token, refresh?, label}.
  function credential() {
    try {
      return JSON.parse(sessionStorage.getItem(storageKey) || 'null');
    } catch {
      return null;
    }
  }

  function saveCredential(c) {
    if (c) sessionStorage.setItem(storageKey, JSON.stringify(c));
    else sessionStorage.removeItem(storageKey);
  }

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

  // refreshing is the one refresh in flight, shared by the requests that found the access
  // token expired.
  let refreshing = null;

  async function refresh() {
    const c = credential();
    if (!c || c.kind !== 'user' || !c.refresh) return false;
    if (!refreshing) {
      refreshing = (async () => {
        const r = await request('POST', '/api/v1/auth/refresh', {refresh_token: c.refresh});
        if (!r.ok) return false;
        saveCredential({...c, token: r.data.access_token, refresh: r.data.refresh_token});
        return true;
      })().finally(() => { refreshing = null; });
    }
    return refreshing;
  }

  // api calls the API with the credential and returns the decoded answer; an error answer
  // throws an APIError. An expired access token is refreshed once.
  async function api(method, path, body) {
    let r = await request(method, path, body);
    if (r.status === 401 && await refresh()) r = await request(method, path, body);
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
        if (e.status !== 401 && e.status !== 403) console.warn('switchboard: stored credential:', e);
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
        return {kind: 'user', token: r.data.access_token, refresh: r.data.refresh_token, label: r.data.user && r.data.user.email};
      });
    });

    section.replaceChildren(
      el('h1', {}, 'Sign in to Switchboard'),
      el('p', {class: 'muted small'}, 'With an API key of your tenant, or the email and password of a user. It is kept in this tab only.'),
      el('div', {class: 'tabs', role: 'tablist'}, tabKey, tabPassword),
      keyForm, passwordForm, error);
    section.hidden = false;
    keyInput.focus();
  }

  return {api, withToken, token, refresh, el, duration, clock, when, ms, signIn, APIError};
})();
