// The studio: what a tenant builds, made and changed in the browser through the same API any
// client uses: agents, phone numbers, trunks, tools, knowledge bases and keys. Each is a
// list (#agents) and a form (#agents/new, #agents/{id}); the API's answers, 422s included,
// are what the page shows. Calls and Analytics are views other scripts of the page register
// with Studio.register; until they do, they point to the call history, the charts and the
// dashboard.
'use strict';

const Studio = (() => {
  const el = (...a) => SB.el(...a);
  const $ = (id) => document.getElementById(id);
  const views = new Map();
  let me = null;
  // rendering counts renders, so that an answer that arrives after the user moved on is
  // not drawn over the view they moved to.
  let rendering = 0;
  // viewStream is the event stream the view on show follows, closed when another is shown.
  let viewStream = null;

  function register(name, view) {
    views.set(name, view);
    if (me) render();
  }

  const enc = encodeURIComponent;

  // everything lists every item of a collection, a page at a time.
  async function everything(path) {
    const items = [];
    for (let offset = 0; ; offset += 100) {
      const page = await SB.api('GET', path + (path.includes('?') ? '&' : '?') + 'limit=100&offset=' + offset);
      items.push(...(page.items || []));
      if (!page.items || !page.items.length || items.length >= page.total) return items;
    }
  }

  // optional answers what a route gives, or fallback when it cannot (absent on this build,
  // or not for this credential's scopes).
  async function optional(promise, fallback) {
    try {
      return await promise;
    } catch {
      return fallback;
    }
  }

  function when(iso) {
    return iso ? SB.when(iso) : '—';
  }

  // The kinds of thing the studio builds: where they live in the API, how a list shows
  // them, and the fields of their form (loaded when the form opens, as some offer choices
  // read from the API).
  const kinds = {
    agents: {
      title: 'Agents', singular: 'agent', path: '/api/v1/agents',
      // A new agent's form starts from the server's defaults (store.NewAgent), so that it
      // shows what the agent will be; the model is the first the server lists.
      defaults: {
        language: 'en', temperature: 0.7, voice: {provider: 'espeak', voice: 'en-us', speed: 1}, transcriber: {provider: 'openai', model: 'whisper-1'},
        knowledge: {mode: 'auto'}, turn: {endpointing_ms: 600, interruptions: true, min_interruption_ms: 250, first_message_interruptible: true},
        limits: {max_duration_s: 1800, idle_timeout_s: 30},
      },
      intro: 'An agent answers calls: its instructions and first message, the model it thinks with, how it speaks and hears, its tools and knowledge, and how it takes turns.',
      columns: [
        ['Name', (a) => a.name],
        ['Brain', (a) => (a.workflow_id ? 'Workflow' : a.model)],
        ['Voice', (a) => [a.voice && a.voice.provider, a.voice && a.voice.voice].filter(Boolean).join(' · ')],
        ['Updated', (a) => when(a.updated_at)],
      ],
      fields: agentFields,
      after: agentAfter,
      links: (a) => [el('a', {href: '/call?agent=' + enc(a.id), id: 'call-agent'}, 'Call it from the browser')],
    },
    numbers: {
      title: 'Phone numbers', singular: 'phone number', path: '/api/v1/phone-numbers',
      // The list names the agents that answer.
      context: async () => ({agents: new Map((await optional(everything('/api/v1/agents'), [])).map((a) => [a.id, a.name]))}),
      intro: 'A number (E.164, or a SIP user) routes the calls dialled to it to an agent or a built-in destination, over any trunk or one.',
      columns: [
        ['Number', (p) => el('span', {class: 'mono'}, p.number)],
        ['Name', (p) => p.name],
        ['Answered by', (p, ctx) => (p.agent_id ? ctx.agents.get(p.agent_id) || p.agent_id : p.destination || '—')],
        ['Routable', (p) => (p.routable ? 'yes' : p.not_routable || 'no')],
      ],
      fields: async () => {
        const [agents, trunks] = await Promise.all([optional(everything('/api/v1/agents'), []), optional(everything('/api/v1/trunks'), [])]);
        return [
          {path: 'number', label: 'Number', required: true, placeholder: '+14155550100', help: 'E.164 (+ and digits), or a SIP user such as "support".'},
          {path: 'name', label: 'Name'},
          {path: 'agent_id', label: 'Agent', type: 'select', nullable: true, options: [{value: '', label: '— none —'}, ...agents.map((a) => ({value: a.id, label: a.name}))]},
          {path: 'destination', label: 'Or a built-in destination', type: 'select', options: [{value: '', label: '— none —'}, 'echo', 'tone']},
          {path: 'trunk_id', label: 'Trunk', type: 'select', nullable: true, help: 'Only calls that arrive over this trunk reach the number; none: any of the tenant\'s trunks.',
            options: [{value: '', label: '— any —'}, ...trunks.map((t) => ({value: t.id, label: t.name}))]},
        ];
      },
    },
    trunks: {
      title: 'Trunks', singular: 'trunk', path: '/api/v1/trunks',
      intro: 'A trunk is a SIP connection to a carrier or PBX: who may send calls in (addresses, or a username and password), and where calls go out. Admins only.',
      columns: [
        ['Name', (t) => t.name],
        ['Direction', (t) => t.direction],
        ['Outbound', (t) => el('span', {class: 'mono'}, (t.outbound && t.outbound.address) || '—')],
        ['Registration', (t) => (t.registration ? t.registration.state || '' : '—')],
      ],
      fields: async () => [
        {path: 'name', label: 'Name', required: true},
        {path: 'direction', label: 'Direction', type: 'select', options: ['inbound', 'outbound', 'both']},
        {path: 'srtp', label: 'Media encryption (SRTP)', type: 'select', options: [{value: 'off', label: 'off'}, {value: 'offer', label: 'offer, fall back to RTP'}, {value: 'required', label: 'required'}]},
        {path: 'price_per_minute_usd', label: 'Price per minute (USD)', type: 'number', step: 'any', min: 0},
        {section: 'Inbound'},
        {path: 'inbound.allowed_cidrs', label: 'Allowed addresses (CIDR, one a line)', type: 'list', placeholder: '203.0.113.0/24'},
        {path: 'inbound.username', label: 'Username (digest)'},
        {path: 'inbound.password', label: 'Password', type: 'password', help: 'Left empty, the password set before is kept.'},
        {section: 'Outbound'},
        {path: 'outbound.address', label: 'Address (host or host:port)', placeholder: 'sip.carrier.example'},
        {path: 'outbound.transport', label: 'Transport', type: 'select', options: ['udp', 'tcp', 'tls']},
        {path: 'outbound.username', label: 'Username'},
        {path: 'outbound.password', label: 'Password', type: 'password', help: 'Left empty, the password set before is kept.'},
        {path: 'outbound.caller_id', label: 'Caller ID', placeholder: '+14155550100'},
        {path: 'outbound.register', label: 'Register with the carrier', type: 'checkbox'},
        {path: 'outbound.registrar', label: 'Registrar, when not the address'},
      ],
    },
    tools: {
      title: 'Tools', singular: 'tool', path: '/api/v1/tools',
      defaults: {webhook: {method: 'POST', timeout_ms: 10000, headers: {}}}, // store.NewTool's
      intro: 'A tool is a function an agent\'s model may call: the model reads its name, description and parameters (JSON Schema); the call runs as an HTTP request to its webhook.',
      columns: [
        ['Name', (t) => el('span', {class: 'mono'}, t.name)],
        ['Description', (t) => t.description],
        ['Webhook', (t) => el('span', {class: 'mono'}, (t.webhook && t.webhook.method + ' ' + t.webhook.url) || '')],
      ],
      fields: async () => [
        {path: 'name', label: 'Name', required: true, placeholder: 'get_order', help: 'Letters, digits, underscores or hyphens: what the model calls.'},
        {path: 'description', label: 'Description', type: 'textarea', rows: 2, help: 'What the model reads to decide when to call it.'},
        {path: 'parameters', label: 'Parameters (JSON Schema of an object)', type: 'json', fallback: {type: 'object', properties: {}}},
        {path: 'webhook.url', label: 'Webhook URL', required: true, help: 'An absolute http or https URL; the call\'s arguments are its JSON body.'},
        {path: 'webhook.method', label: 'Method', type: 'select', options: ['POST', 'GET', 'PUT', 'PATCH', 'DELETE']},
        {path: 'webhook.headers', label: 'Headers (JSON object)', type: 'json', rows: 3},
        {path: 'webhook.timeout_ms', label: 'Timeout (ms)', type: 'number', min: 100},
      ],
    },
    knowledge: {
      title: 'Knowledge', singular: 'knowledge base', path: '/api/v1/knowledge-bases',
      intro: 'A knowledge base holds documents (PDF, text, Markdown, HTML, DOCX) that agents search as they answer.',
      columns: [
        ['Name', (b) => b.name],
        ['Description', (b) => b.description],
        ['Embeddings', (b) => b.embedding_model || 'none (words only)'],
      ],
      fields: async () => [
        {path: 'name', label: 'Name', required: true},
        {path: 'description', label: 'Description', type: 'textarea', rows: 2},
        {path: 'embedding_model', label: 'Embedding model', placeholder: 'none', help: 'provider/model of an OpenAI-compatible /v1/embeddings; empty or "none": search by words only.'},
        {path: 'chunk_size', label: 'Chunk size (characters)', type: 'number'},
        {path: 'chunk_overlap', label: 'Chunk overlap (characters)', type: 'number'},
      ],
      after: documents,
    },
  };

  // agentFields are an agent's form: the model from /v1/models, the voice and transcriber
  // from the configured providers (and each provider's voices, where the server lists them),
  // the tenant's tools and knowledge bases.
  async function agentFields() {
    const [models, tools, bases, providers, voices] = await Promise.all([
      optional(SB.api('GET', '/v1/models'), {data: []}),
      optional(everything('/api/v1/tools'), []),
      optional(everything('/api/v1/knowledge-bases'), []),
      optional(everything('/api/v1/providers'), []),
      optional(SB.api('GET', '/api/v1/voices'), null),
    ]);
    const modelIds = (models.data || []).map((m) => m.id).filter((id) => !id.startsWith('agent/'));
    const names = new Set(['espeak']);
    for (const m of models.data || []) if (m.owned_by && m.owned_by !== 'agent') names.add(m.owned_by);
    for (const p of providers) names.add(p.name);
    for (const v of (voices && voices.data) || []) if (v.provider) names.add(v.provider);
    const providerNames = [...names].sort();
    const model = modelIds.length
      ? {path: 'model', label: 'Model', type: 'select', options: modelIds, help: 'From GET /v1/models: the configured providers\' models.'}
      : {path: 'model', label: 'Model', placeholder: 'openai/gpt-4o-mini', help: 'provider/model; no provider lists its models here.'};
    return [
      {path: 'name', label: 'Name', required: true},
      {path: 'instructions', label: 'Instructions', type: 'textarea', rows: 6, placeholder: 'You are the receptionist of …'},
      {path: 'first_message', label: 'First message', placeholder: 'Hello, how can I help?', help: 'Said as the call is answered; empty: the caller speaks first.'},
      model,
      {path: 'temperature', label: 'Temperature', type: 'number', step: 'any', min: 0},
      {path: 'language', label: 'Language', placeholder: 'en'},
      {section: 'Voice'},
      {path: 'voice.provider', label: 'Voice provider', suggest: providerNames, help: '"espeak" is built in; others are the configured speech providers.'},
      {path: 'voice.voice', label: 'Voice', suggest: true},
      {path: 'voice.speed', label: 'Speed', type: 'number', step: 'any'},
      {section: 'Transcriber'},
      {path: 'transcriber.provider', label: 'Transcriber provider', suggest: providerNames.filter((n) => n !== 'espeak')},
      {path: 'transcriber.model', label: 'Transcriber model', placeholder: 'whisper-1'},
      {path: 'transcriber.language', label: 'Transcriber language', placeholder: 'en'},
      {section: 'Tools and knowledge'},
      {path: 'tool_ids', label: 'Tools', type: 'checks', options: tools.map((t) => ({value: t.id, label: t.name})), empty: 'No tools yet: make one under Tools.'},
      {path: 'knowledge_base_ids', label: 'Knowledge bases', type: 'checks', options: bases.map((b) => ({value: b.id, label: b.name})), empty: 'No knowledge bases yet: make one under Knowledge.'},
      {path: 'knowledge.mode', label: 'How the model uses knowledge', type: 'select',
        options: [{value: 'auto', label: 'auto: searched with every turn'}, {value: 'tool', label: 'tool: the model searches when it needs to'}, {value: 'off', label: 'off'}]},
      {path: 'transfer_targets', label: 'Transfer targets (one a line)', type: 'list', placeholder: '+15550002', help: 'Numbers or SIP URIs the model may hand a caller to; none: it cannot transfer.'},
      {section: 'Turn taking'},
      {path: 'turn.endpointing_ms', label: 'End of turn after silence (ms)', type: 'number'},
      {path: 'turn.interruptions', label: 'The caller may interrupt the agent', type: 'checkbox'},
      {path: 'turn.min_interruption_ms', label: 'Speech that interrupts (ms)', type: 'number'},
      {path: 'turn.first_message_interruptible', label: 'The first message may be interrupted', type: 'checkbox'},
      {section: 'Limits'},
      {path: 'limits.max_duration_s', label: 'Longest call (s)', type: 'number'},
      {path: 'limits.idle_timeout_s', label: 'Hang up after silence (s, 0: never)', type: 'number'},
    ];
  }

  // agentAfter offers the voices of the chosen voice provider, where the server lists them
  // (GET /api/v1/voices?provider=); elsewhere the voice is free text.
  function agentAfter(item, f) {
    const provider = f.control('voice.provider');
    const load = async () => {
      const name = provider.value.trim();
      if (!name) return;
      const list = await optional(SB.api('GET', '/api/v1/voices?provider=' + enc(name)), null);
      f.suggest('voice.voice', ((list && list.data) || []).map((v) => ({value: v.id, label: [v.name, v.language].filter(Boolean).join(' · ') || v.id})));
    };
    provider.addEventListener('change', load);
    load();
    return null;
  }

  // documents lists a knowledge base's documents and uploads new ones.
  function documents(base) {
    if (!base.id) return null;
    const list = el('ul', {class: 'docs', id: 'documents'});
    const status = el('p', {class: 'muted small', role: 'status'});
    const file = el('input', {type: 'file', id: 'document-file', accept: '.pdf,.txt,.md,.markdown,.html,.htm,.docx'});
    const upload = el('button', {type: 'button', id: 'document-upload'}, 'Upload');
    const load = async () => {
      const docs = await optional(everything('/api/v1/knowledge-bases/' + enc(base.id) + '/documents'), []);
      list.replaceChildren(...docs.map((d) => el('li', {'data-document-id': d.id, 'data-status': d.status},
        el('span', {}, d.file_name), el('span', {class: 'badge ' + (d.status === 'failed' ? 'error' : d.status === 'ready' ? 'live' : 'connecting')}, d.status),
        el('span', {class: 'muted small'}, d.status === 'failed' ? d.reason : d.chunk_count + ' chunks'),
        el('button', {type: 'button', class: 'link danger-link', 'data-delete-document': d.id, onclick: () => remove(d)}, 'Delete'))));
      if (!docs.length) list.append(el('li', {class: 'muted small'}, 'No documents yet.'));
      return docs;
    };
    const remove = async (d) => {
      if (!await Forms.confirm('Delete the document "' + d.file_name + '"? Its chunks leave the index at once.')) return;
      try {
        await SB.api('DELETE', '/api/v1/knowledge-bases/' + enc(base.id) + '/documents/' + enc(d.id));
        status.textContent = 'Deleted ' + d.file_name + '.';
      } catch (e) {
        status.textContent = e.message;
      }
      await load();
    };
    upload.addEventListener('click', async () => {
      if (!file.files.length) {
        status.textContent = 'Choose a file first.';
        return;
      }
      const form = new FormData();
      form.append('file', file.files[0]);
      upload.disabled = true;
      status.textContent = 'Uploading…';
      try {
        const r = await fetch('/api/v1/knowledge-bases/' + enc(base.id) + '/documents', {method: 'POST', body: form, headers: {Authorization: 'Bearer ' + SB.token()}});
        const data = await r.json().catch(() => null);
        if (!r.ok) throw new SB.APIError(r.status, data);
        status.textContent = 'Uploaded ' + data.file_name + ': ' + data.status + '.';
        file.value = '';
        await load(); // ready or failed follows on the base's event stream
      } catch (e) {
        status.textContent = e.message;
      } finally {
        upload.disabled = false;
      }
    });
    // The base's events say when a document is ready or failed; what changed while the
    // stream was away is read again when it opens.
    const es = viewStream = new EventSource(SB.withToken('/api/v1/events?topics=' + enc('knowledge:' + base.id)));
    es.onopen = () => load();
    for (const type of ['knowledge.document.ready', 'knowledge.document.failed']) es.addEventListener(type, () => load());
    return el('section', {class: 'part'}, el('h3', {}, 'Documents'), list, el('div', {class: 'upload'}, file, upload), status);
  }

  function head(title, ...right) {
    return el('div', {class: 'card-head'}, el('h2', {}, title), el('div', {class: 'head-actions'}, ...right));
  }

  async function showList(root, name, kind, turn) {
    root.replaceChildren(head(kind.title), el('p', {class: 'muted'}, 'Loading…'));
    const [items, ctx] = await Promise.all([everything(kind.path), kind.context ? kind.context() : {}]);
    if (turn !== rendering) return;
    const rows = items.map((it) => el('tr', {'data-id': it.id, tabindex: 0, onclick: () => { location.hash = '#' + name + '/' + it.id; },
      onkeydown: (ev) => { if (ev.key === 'Enter') location.hash = '#' + name + '/' + it.id; }},
    ...kind.columns.map(([, cell]) => el('td', {}, cell(it, ctx)))));
    root.replaceChildren(
      head(kind.title, el('span', {class: 'count'}, items.length ? String(items.length) : ''),
        el('a', {class: 'button primary', href: '#' + name + '/new', id: 'new-' + name}, 'New ' + kind.singular)),
      el('p', {class: 'muted small'}, kind.intro),
      items.length
        ? el('div', {class: 'table-wrap'}, el('table', {id: name + '-list'},
          el('thead', {}, el('tr', {}, ...kind.columns.map(([h]) => el('th', {}, h)))), el('tbody', {}, ...rows)))
        : el('p', {class: 'empty'}, 'None yet.'));
  }

  async function showItem(root, name, kind, id, turn) {
    const fresh = id === 'new';
    root.replaceChildren(head(fresh ? 'New ' + kind.singular : kind.singular), el('p', {class: 'muted'}, 'Loading…'));
    const [item, fields] = await Promise.all([fresh ? {} : SB.api('GET', kind.path + '/' + enc(id)), kind.fields()]);
    if (turn !== rendering) return;
    const notice = el('p', {class: 'notice', role: 'status', id: 'saved', hidden: !sessionStorage.getItem('switchboard.saved')});
    if (!notice.hidden) notice.textContent = sessionStorage.getItem('switchboard.saved');
    sessionStorage.removeItem('switchboard.saved');
    const f = Forms.build({
      id: 'form-' + name, fields, values: fresh ? kind.defaults || {} : item, submitLabel: fresh ? 'Create ' + kind.singular : 'Save',
      submit: async (body) => {
        if (fresh) {
          const made = await SB.api('POST', kind.path, body);
          sessionStorage.setItem('switchboard.saved', 'Created.');
          location.hash = '#' + name + '/' + made.id;
        } else {
          await SB.api('PATCH', kind.path + '/' + enc(id), body);
          sessionStorage.setItem('switchboard.saved', 'Saved.');
          render();
        }
      },
    });
    if (!fresh) {
      const del = el('button', {type: 'button', class: 'danger', id: 'delete'}, 'Delete');
      del.addEventListener('click', async () => {
        if (!await Forms.confirm('Delete the ' + kind.singular + ' "' + (item.name || item.number || id) + '"? This cannot be undone.')) return;
        try {
          await SB.api('DELETE', kind.path + '/' + enc(id));
          location.hash = '#' + name;
        } catch (e) {
          f.showError(e);
        }
      });
      f.actions.append(del);
    }
    const title = fresh ? 'New ' + kind.singular : item.name || item.number || id;
    root.replaceChildren(...[
      head(title, el('a', {href: '#' + name}, '← ' + kind.title)),
      fresh ? null : el('p', {class: 'mono muted small', id: 'item-id'}, item.id),
      fresh || !kind.links ? null : el('p', {class: 'links'}, ...kind.links(item)),
      notice, f.form, kind.after ? kind.after(item, f) : null,
    ].filter(Boolean)); // replaceChildren would write a null as the text "null"
  }

  // Keys: made here and shown once, with a copy button; listed without their secret after.
  async function showKeys(root, turn) {
    root.replaceChildren(head('API keys'), el('p', {class: 'muted'}, 'Loading…'));
    const keys = await everything('/api/v1/keys');
    if (turn !== rendering) return;
    const shown = el('div', {id: 'key-shown'});
    const f = Forms.build({
      id: 'form-keys', submitLabel: 'Create key',
      fields: [
        {path: 'name', label: 'Name', required: true, placeholder: 'production'},
        {path: 'scopes', label: 'Scopes', type: 'checks', options: ['read', 'write', 'admin']},
        {path: 'env', label: 'Environment', type: 'select', options: [{value: 'live', label: 'live (as_live_)'}, {value: 'test', label: 'test (as_test_)'}]},
        {path: 'expires_at', label: 'Expires', type: 'datetime-local', nullable: true, help: 'Empty: never.'},
      ],
      values: {scopes: ['read', 'write'], env: 'live'},
      submit: async (body) => {
        if (body.expires_at) body.expires_at = new Date(body.expires_at).toISOString();
        else delete body.expires_at;
        const made = await SB.api('POST', '/api/v1/keys', body);
        // The key lives in this element only: it is kept nowhere and read from the server
        // never again.
        const value = el('input', {id: 'created-key', class: 'mono', readonly: true, value: made.key});
        const copy = el('button', {type: 'button', id: 'copy-key'}, 'Copy');
        const said = el('span', {class: 'muted small', role: 'status'});
        copy.addEventListener('click', async () => {
          value.select();
          try {
            await navigator.clipboard.writeText(made.key);
            said.textContent = 'Copied.';
          } catch {
            said.textContent = document.execCommand && document.execCommand('copy') ? 'Copied.' : 'Select it and copy.';
          }
        });
        shown.replaceChildren(el('div', {class: 'card shown-once'},
          el('h3', {}, 'Key "' + made.name + '" made: copy it now'),
          el('p', {class: 'small'}, 'It is shown this once: the server keeps only its hash, and this page forgets it when you leave.'),
          el('div', {class: 'copy-row'}, value, copy), said));
        value.select();
        await relist();
      },
    });
    const list = el('tbody', {}, ...keys.map(keyRow));
    const count = el('span', {class: 'count'}, String(keys.length));
    const relist = async () => {
      const all = await everything('/api/v1/keys');
      list.replaceChildren(...all.map(keyRow));
      count.textContent = String(all.length);
    };
    root.replaceChildren(
      head('API keys', count),
      el('p', {class: 'muted small'}, 'A key reaches every route of the tenant its scopes allow. The server keeps only its hash: a key is shown once, when it is made.'),
      shown,
      el('div', {class: 'table-wrap'}, el('table', {id: 'keys-list'},
        el('thead', {}, el('tr', {}, ...['Name', 'Key', 'Scopes', 'Made', 'Last used', 'Expires', ''].map((h) => el('th', {}, h)))), list)),
      el('h3', {class: 'form-section'}, 'New key'), f.form);

    function keyRow(k) {
      const revoked = Boolean(k.revoked_at);
      const revoke = el('button', {type: 'button', class: 'link danger-link', 'data-revoke': k.id, disabled: revoked || (me && me.key_id === k.id)}, revoked ? 'Revoked' : 'Revoke');
      revoke.addEventListener('click', async (ev) => {
        ev.stopPropagation();
        if (!await Forms.confirm('Revoke the key "' + k.name + '"? Whatever uses it stops working at once.', 'Revoke')) return;
        try {
          await SB.api('DELETE', '/api/v1/keys/' + enc(k.id));
          await relist();
        } catch (e) {
          f.showError(e);
        }
      });
      return el('tr', {'data-id': k.id, class: revoked ? 'revoked' : null},
        el('td', {}, k.name), el('td', {class: 'mono'}, k.display), el('td', {}, (k.scopes || []).join(', ')),
        el('td', {class: 'num'}, when(k.created_at)), el('td', {class: 'num'}, when(k.last_used_at)), el('td', {class: 'num'}, when(k.expires_at)),
        el('td', {}, revoke));
    }
  }

  // A view of another script of the page (Calls, Analytics), or a pointer to the page of
  // its own where there is none: the call history (/calls), the charts (/analytics) and the
  // live calls (/dashboard).
  function showSlot(root, name, params) {
    const v = views.get(name);
    if (v) return v.render(root, params);
    const calls = name === 'calls';
    root.replaceChildren(head(calls ? 'Calls' : 'Analytics'),
      calls
        ? el('p', {}, 'Past calls, with filters, recordings, turn latencies, cost and kept events, are in ', el('a', {href: '/calls'}, 'the call history'),
          '; live calls and their transcripts are on ', el('a', {href: '/dashboard'}, 'the dashboard'), '.')
        : el('p', {}, 'Call volume, answer rate, turn latency and cost are charted on ', el('a', {href: '/analytics'}, 'the analytics page'), '.'));
    return undefined;
  }

  async function render() {
    const turn = ++rendering;
    if (viewStream) viewStream.close();
    viewStream = null;
    const [first, ...rest] = location.hash.slice(1).split('/');
    const name = first || 'agents';
    const id = rest.join('/');
    for (const a of $('sections').querySelectorAll('a[data-view]')) {
      if (a.getAttribute('data-view') === name) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const root = $('view');
    root.setAttribute('data-view', name);
    root.removeAttribute('data-ready');
    try {
      if (name === 'keys') await showKeys(root, turn);
      else if (kinds[name] && id) await showItem(root, name, kinds[name], id, turn);
      else if (kinds[name]) await showList(root, name, kinds[name], turn);
      else await showSlot(root, name, rest);
    } catch (e) {
      if (turn !== rendering) return;
      root.replaceChildren(head('Something went wrong'), el('p', {class: 'error', role: 'alert'},
        e.status === 403 ? e.message + ': sign in with a key or user that has it.' : e.message));
    }
    if (turn === rendering) root.setAttribute('data-ready', name + (id ? '/' + id : ''));
  }

  SB.signIn((who) => {
    me = who;
    window.switchboard = {me};
    addEventListener('hashchange', render);
    render();
  });

  return {register, render, kinds};
})();
