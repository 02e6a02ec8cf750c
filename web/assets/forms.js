// The studio's forms: a form made from a list of fields, each named by its path in the API's
// JSON body ("voice.provider", "turn.endpointing_ms"), that reads itself into that body and
// puts each of the API's 422 details next to the field it names, so that the server's own
// validation is what the user reads. Also the confirmation asked before a delete.
'use strict';

const Forms = (() => {
  const el = (...a) => SB.el(...a);

  function get(obj, path) {
    let v = obj;
    for (const part of path.split('.')) {
      if (v === null || v === undefined) return undefined;
      v = v[part];
    }
    return v;
  }

  function set(obj, path, value) {
    const parts = path.split('.');
    let o = obj;
    for (const part of parts.slice(0, -1)) {
      if (typeof o[part] !== 'object' || o[part] === null) o[part] = {};
      o = o[part];
    }
    o[parts[parts.length - 1]] = value;
  }

  function idOf(formId, path) {
    return formId + '-' + path.replace(/[^A-Za-z0-9_-]/g, '-');
  }

  // options turns what a field offers into [{value, label}]: strings, or objects.
  function options(list) {
    return (list || []).map((o) => (typeof o === 'string' ? {value: o, label: o} : o));
  }

  // A field: {path, label, type, help, options, placeholder, required, nullable, step, min,
  // suggest (a datalist's values), rows}. Types: text, password, textarea, number,
  // checkbox, select, checks (several of options: an array), list (one value a line: an
  // array), json (an object written as JSON).
  function control(formId, f, value) {
    const id = idOf(formId, f.path);
    const common = {id, name: f.path, 'data-path': f.path, 'aria-describedby': id + '-error'};
    switch (f.type) {
      case 'textarea':
        return el('textarea', {...common, rows: f.rows || 4, placeholder: f.placeholder}, value ?? '');
      case 'checkbox': {
        const c = el('input', {...common, type: 'checkbox'});
        c.checked = Boolean(value);
        return c;
      }
      case 'select': {
        const opts = options(f.options);
        const s = el('select', common, ...opts.map((o) => el('option', {value: o.value}, o.label)));
        // A value the choices lack (a model no longer listed, say) stays chosen, not lost.
        if (value !== undefined && value !== null && !opts.some((o) => o.value === String(value))) {
          s.append(el('option', {value: String(value)}, String(value)));
        }
        if (value !== undefined && value !== null) s.value = String(value);
        return s;
      }
      case 'checks': {
        const chosen = new Set(value || []);
        const opts = options(f.options);
        const box = el('div', {...common, class: 'checks', role: 'group'});
        if (!opts.length) box.append(el('span', {class: 'muted small'}, f.empty || 'None yet.'));
        for (const o of opts) {
          const cb = el('input', {type: 'checkbox', value: o.value, id: id + '-' + o.value.replace(/[^A-Za-z0-9_-]/g, '-')});
          cb.checked = chosen.has(o.value);
          box.append(el('label', {class: 'check'}, cb, o.label));
        }
        return box;
      }
      case 'list':
        return el('textarea', {...common, rows: f.rows || 3, placeholder: f.placeholder}, (value || []).join('\n'));
      case 'json':
        return el('textarea', {...common, rows: f.rows || 5, class: 'mono', spellcheck: 'false'}, JSON.stringify(value ?? f.fallback ?? {}, null, 2));
      default: {
        const input = el('input', {...common, type: f.type || 'text', placeholder: f.placeholder, step: f.step, min: f.min,
          autocomplete: f.type === 'password' ? 'new-password' : 'off', list: f.suggest ? id + '-suggest' : undefined});
        if (value !== undefined && value !== null && f.type !== 'password') input.value = String(value);
        return input;
      }
    }
  }

  // read gives a field's value as the API takes it; skip (undefined) leaves it out of the
  // body, so that the server keeps or defaults it. A malformed value throws with a message.
  function read(f, c) {
    switch (f.type) {
      case 'checkbox':
        return c.checked;
      case 'checks':
        return [...c.querySelectorAll('input[type=checkbox]')].filter((b) => b.checked).map((b) => b.value);
      case 'list':
        return c.value.split('\n').map((s) => s.trim()).filter(Boolean);
      case 'json':
        if (!c.value.trim()) return undefined;
        try {
          return JSON.parse(c.value);
        } catch (e) {
          throw new Error('is not JSON: ' + e.message);
        }
      case 'number': {
        if (c.value.trim() === '') return undefined;
        const n = Number(c.value);
        if (!Number.isFinite(n)) throw new Error('must be a number');
        return n;
      }
      case 'password':
        return c.value === '' ? undefined : c.value; // empty: the stored one is kept
      case 'select':
        return c.value === '' && f.nullable ? null : c.value;
      default:
        return f.nullable && c.value.trim() === '' ? null : c.value;
    }
  }

  // build makes a form of fields over values (a row of the API, or {} for a new one) and
  // calls submit(body) with what it holds; an APIError that submit throws is shown at the
  // fields it names. It returns the form, its row of buttons, showError, suggest (for
  // suggestions that load after it) and control (a field's element).
  function build({id, fields, values = {}, submitLabel = 'Save', submit}) {
    const form = el('form', {id, class: 'studio-form', novalidate: true});
    const summary = el('p', {class: 'error form-error', role: 'alert', hidden: true, 'data-error-for': ''});
    const rows = new Map();
    for (const f of fields) {
      if (f.section) {
        form.append(el('h3', {class: 'form-section'}, f.section));
        continue;
      }
      const c = control(id, f, get(values, f.path));
      const err = el('p', {class: 'field-error', id: idOf(id, f.path) + '-error', 'data-error-for': f.path, role: 'alert', hidden: true});
      const label = f.type === 'checkbox'
        ? el('label', {class: 'check', for: c.id}, c, f.label)
        : el('label', {for: c.id}, f.label, f.required ? el('span', {class: 'req', 'aria-hidden': 'true'}, ' *') : null);
      const row = el('div', {class: 'field', 'data-field': f.path}, label, f.type === 'checkbox' ? null : c,
        f.suggest ? el('datalist', {id: c.id + '-suggest'}) : null,
        f.help ? el('p', {class: 'help muted small'}, f.help) : null, err);
      rows.set(f.path, {f, c, err, row});
      if (Array.isArray(f.suggest)) suggest(f.path, f.suggest);
      form.append(row);
    }
    const save = el('button', {type: 'submit', class: 'primary'}, submitLabel);
    const actions = el('div', {class: 'form-actions'}, save);
    form.append(summary, actions);

    function clear() {
      summary.hidden = true;
      for (const {c, err} of rows.values()) {
        err.hidden = true;
        err.textContent = '';
        c.removeAttribute('aria-invalid');
      }
    }

    // fieldFor is the field a detail of the API names: itself, or the nearest one it is
    // part of ("tool_ids[1]" is of tool_ids, "webhook.headers.X-Key" of webhook.headers).
    function fieldFor(name) {
      let best = null;
      for (const path of rows.keys()) {
        if (name === path || name.startsWith(path + '.') || name.startsWith(path + '[')) {
          if (!best || path.length > best.length) best = path;
        }
      }
      return best && rows.get(best);
    }

    function mark(r, message) {
      r.err.textContent = r.err.textContent ? r.err.textContent + ' ' + message : message;
      r.err.hidden = false;
      r.c.setAttribute('aria-invalid', 'true');
    }

    function showError(e) {
      clear();
      const details = (e && e.details) || [];
      const unplaced = [];
      let first = null;
      for (const d of details) {
        const r = fieldFor(d.field || '');
        if (!r) {
          unplaced.push((d.field ? d.field + ' ' : '') + d.message);
          continue;
        }
        mark(r, d.field === r.f.path ? d.message : d.field + ' ' + d.message);
        first = first || r;
      }
      if (!first || unplaced.length) {
        summary.textContent = unplaced.length ? unplaced.join('; ') : (e && e.message) || String(e);
        summary.hidden = false;
      }
      (first ? first.c : summary).scrollIntoView({block: 'center'});
      if (first && first.c.focus) first.c.focus();
    }

    form.addEventListener('submit', async (ev) => {
      ev.preventDefault();
      clear();
      const body = {};
      const local = [];
      for (const [path, {f, c}] of rows) {
        if (f.readOnly) continue;
        try {
          const v = read(f, c);
          if (v !== undefined) set(body, path, v);
        } catch (e) {
          local.push({field: path, message: e.message});
        }
      }
      if (local.length) {
        showError({details: local});
        return;
      }
      save.disabled = true;
      try {
        await submit(body);
      } catch (e) {
        if (!(e instanceof SB.APIError)) console.error(e);
        showError(e);
      } finally {
        save.disabled = false;
      }
    });

    // suggest fills a field's datalist with values (strings or {value, label}).
    function suggest(path, values) {
      const r = rows.get(path);
      if (!r) return;
      const list = form.querySelector('#' + CSS.escape(r.c.id + '-suggest')) || r.row.querySelector('datalist');
      if (list) list.replaceChildren(...options(values).map((o) => el('option', {value: o.value}, o.label !== o.value ? o.label : null)));
    }

    return {form, actions, showError, suggest, control: (path) => rows.get(path) && rows.get(path).c};
  }

  // confirm asks in the page (a modal dialog) before something that cannot be undone.
  function confirm(message, action = 'Delete') {
    return new Promise((resolve) => {
      const yes = el('button', {type: 'button', class: 'danger', id: 'confirm-yes'}, action);
      const no = el('button', {type: 'button', id: 'confirm-no'}, 'Cancel');
      const d = el('dialog', {id: 'confirm', class: 'card confirm'}, el('p', {}, message), el('div', {class: 'form-actions'}, no, yes));
      const done = (v) => {
        d.close();
        d.remove();
        resolve(v);
      };
      yes.addEventListener('click', () => done(true));
      no.addEventListener('click', () => done(false));
      d.addEventListener('cancel', (ev) => {
        ev.preventDefault();
        done(false);
      });
      document.body.append(d);
      d.showModal();
      no.focus();
    });
  }

  return {build, confirm};
})();
