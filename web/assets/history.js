// The call history: the tenant's calls filtered by agent, status, direction and time range,
// searched by number and paged, newest first (GET /api/v1/calls); and one call's page: its
// facts and cost, its recording and voicemail played in the page (fetched with the
// credential, then played from a blob), the latency of each answered turn by stage, its
// transcript, and the events and errors it published, kept after the call
// (GET /api/v1/calls/{id}/events). The filters and the open call live in the address, so a
// reload or a shared link shows the same.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const liveStatuses = ['queued', 'ringing', 'in-progress'];
  const agents = new Map(); // id → agent
  const filterNames = ['agent_id', 'status', 'direction', 'from', 'to', 'q'];
  const inputs = {agent_id: 'f-agent', status: 'f-status', direction: 'f-direction', from: 'f-from', to: 'f-to', q: 'f-q'};

  let limit = 20;
  let offset = 0;
  let total = 0;
  let open = null; // {id, urls: [blob URLs]} of the call shown
  const blobURLs = [];

  // view is what the page shows, for tests and for the curious.
  window.switchboardHistory = {get offset() { return offset; }, get total() { return total; }, get open() { return open && open.id; }};

  // Dates are shown in the reader's own locale and time zone.
  function when(iso) {
    if (!iso) return '—';
    const d = new Date(iso);
    return isNaN(d) ? '—' : d.toLocaleString(undefined, {dateStyle: 'medium', timeStyle: 'medium'});
  }

  function money(v, currency) {
    if (!Number.isFinite(v)) return '—';
    try {
      return new Intl.NumberFormat(undefined, {style: 'currency', currency: currency || 'USD', minimumFractionDigits: 2, maximumFractionDigits: 4}).format(v);
    } catch {
      return '$' + v.toFixed(4);
    }
  }

  function agentName(id) {
    if (!id) return '—';
    const a = agents.get(id);
    return a ? a.name : id;
  }

  // The datetime-local inputs hold the reader's local time; the API takes RFC 3339.
  function toInput(iso) {
    const d = new Date(iso);
    if (isNaN(d)) return '';
    const p = (n) => String(n).padStart(2, '0');
    return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
  }

  function fromInput(v) {
    if (!v) return '';
    const d = new Date(v);
    return isNaN(d) ? v : d.toISOString();
  }

  function filters() {
    const f = {};
    for (const name of filterNames) {
      let v = $(inputs[name]).value.trim();
      if (name === 'from' || name === 'to') v = fromInput(v);
      if (v) f[name] = v;
    }
    return f;
  }

  function readAddress() {
    const q = new URLSearchParams(location.search);
    for (const name of filterNames) {
      const v = q.get(name) || '';
      $(inputs[name]).value = name === 'from' || name === 'to' ? (v ? toInput(v) : '') : v;
    }
    const l = parseInt(q.get('limit') || '', 10);
    if (l >= 1 && l <= 100) limit = l;
    const o = parseInt(q.get('offset') || '', 10);
    offset = o > 0 ? o : 0;
  }

  function writeAddress() {
    const q = new URLSearchParams(filters());
    if (limit !== 20) q.set('limit', String(limit));
    if (offset) q.set('offset', String(offset));
    const s = q.toString();
    history.replaceState(null, '', location.pathname + (s ? '?' + s : '') + (open ? '#' + open.id : ''));
  }

  async function loadAgents() {
    const list = await SB.api('GET', '/api/v1/agents?limit=100');
    const select = $('f-agent');
    const wanted = select.value || new URLSearchParams(location.search).get('agent_id') || '';
    for (const a of list.items || []) {
      agents.set(a.id, a);
      select.append(SB.el('option', {value: a.id}, a.name));
    }
    select.value = wanted;
  }

  function showFilterError(e) {
    for (const name of filterNames) $(inputs[name]).removeAttribute('aria-invalid');
    const field = e.details && e.details[0] && e.details[0].field;
    const msg = field ? field + ' ' + e.details[0].message : e.message;
    $('history-error').textContent = msg;
    $('history-error').hidden = false;
    if (field && inputs[field]) $(inputs[field]).setAttribute('aria-invalid', 'true');
  }

  async function loadPage() {
    const q = new URLSearchParams(filters());
    q.set('limit', String(limit));
    q.set('offset', String(offset));
    const body = $('history-calls');
    body.setAttribute('aria-busy', 'true');
    let page;
    try {
      page = await SB.api('GET', '/api/v1/calls?' + q);
    } catch (e) {
      showFilterError(e);
      body.removeAttribute('aria-busy');
      return;
    }
    $('history-error').hidden = true;
    for (const name of filterNames) $(inputs[name]).removeAttribute('aria-invalid');
    total = page.total;
    body.replaceChildren(...(page.items || []).map(row));
    body.removeAttribute('aria-busy');
    body.setAttribute('data-offset', String(offset));
    body.setAttribute('data-query', q.toString());
    $('history-empty').hidden = page.items.length > 0;
    $('history-count').textContent = total === 1 ? '1 call' : total + ' calls';
    $('page-info').textContent = page.items.length ? `${offset + 1}–${offset + page.items.length} of ${total}` : '';
    $('page-newer').disabled = offset === 0;
    $('page-older').disabled = offset + page.items.length >= total;
    writeAddress();
  }

  // party is how a list shows one end of a call: a SIP URI by its user (the number), the
  // whole of it in the cell's title and on the call's page.
  function party(v) {
    if (!v) return '—';
    const m = /^sips?:([^@;]+)@/i.exec(v);
    return m ? m[1] : v;
  }

  function row(c) {
    const tr = SB.el('tr', {'data-call-id': c.id, 'data-status': c.status, 'aria-selected': String(open !== null && open.id === c.id), tabindex: '0'},
      SB.el('td', {class: 'when'}, when(c.started_at || c.created_at)),
      SB.el('td', {}, SB.el('span', {class: 'badge ' + c.status}, c.status)),
      SB.el('td', {}, c.agent_id ? agentName(c.agent_id) : c.destination || '—'),
      SB.el('td', {class: 'mono', title: c.from || ''}, party(c.from)),
      SB.el('td', {class: 'mono', title: c.to || ''}, party(c.to)),
      SB.el('td', {class: 'hide-narrow'}, c.direction),
      SB.el('td', {class: 'num'}, SB.duration(c.duration_seconds)),
      SB.el('td', {class: 'num hide-narrow'}, c.cost_usd ? money(c.cost_usd, c.cost && c.cost.currency) : '—'));
    tr.addEventListener('click', () => select(c.id));
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') select(c.id); });
    return tr;
  }

  function select(id) {
    for (const tr of $('history-calls').querySelectorAll('tr')) tr.setAttribute('aria-selected', String(tr.dataset.callId === id));
    openCall(id);
  }

  // fetchBlob reads a file of the API with the credential (an <audio> element cannot send
  // the Authorization header); an error answer throws with the API's own message.
  async function fetchBlob(path) {
    const get = () => fetch(path, {headers: {Authorization: 'Bearer ' + SB.token()}, cache: 'no-store'});
    let r = await get();
    if (r.status === 401 && await SB.refresh()) r = await get();
    if (!r.ok) {
      let msg = 'HTTP ' + r.status;
      try {
        const body = await r.json();
        msg = (body.error && body.error.message) || body.detail || msg;
      } catch { /* not JSON */ }
      throw Object.assign(new Error(msg), {status: r.status});
    }
    return r.blob();
  }

  // play loads a call's file into an audio element; state says how it went, for tests.
  async function play(path, audio, note, empty) {
    audio.hidden = true;
    audio.removeAttribute('src');
    audio.dataset.state = 'loading';
    try {
      const blob = await fetchBlob(path);
      const url = URL.createObjectURL(blob);
      blobURLs.push(url);
      audio.src = url;
      audio.hidden = false;
      audio.dataset.state = 'ready';
      note.textContent = (blob.size / 1024).toFixed(0) + ' KiB · WAV';
      return true;
    } catch (e) {
      audio.dataset.state = e.status === 404 ? 'none' : 'error';
      note.textContent = e.status === 404 ? empty : e.message;
      return false;
    }
  }

  function fact(k, v) {
    return [SB.el('dt', {}, k), SB.el('dd', {}, v)];
  }

  function renderFacts(c) {
    $('call-title').textContent = c.agent_id ? agentName(c.agent_id) : c.destination ? 'Call to ' + c.destination : 'Call';
    $('call-status').textContent = c.status;
    $('call-status').className = 'badge ' + c.status;
    const q = c.quality || {};
    const facts = [
      fact('Call', SB.el('span', {class: 'mono'}, c.id)),
      fact('Direction', c.direction),
      fact('From', c.from || '—'),
      fact('To', c.to || '—'),
      fact('Started', when(c.started_at || c.created_at)),
      fact('Answered', when(c.answered_at)),
      fact('Ended', c.ended_at ? when(c.ended_at) + (c.ended_reason ? ' (' + c.ended_reason + ')' : '') : '—'),
      fact('Duration', SB.duration(c.duration_seconds)),
    ];
    if (c.codec) facts.push(fact('Codec', c.codec + (c.media_security === 'srtp' ? ' · SRTP' : '')));
    if (q.packets_received || q.packets_sent) {
      facts.push(fact('Media', q.packets_received + ' packets in, ' + q.packets_sent + ' out, ' + (q.loss_percent || 0).toFixed(1) + '% lost, jitter ' + SB.ms(q.jitter_ms)));
    }
    if (c.turns) facts.push(fact('Turns', String(c.turns) + (c.interruptions ? ', ' + c.interruptions + ' interrupted' : '')));
    $('call-facts').replaceChildren(...facts.flat());
  }

  function renderCost(c) {
    const cost = c.cost || {};
    const cur = cost.currency || 'USD';
    const items = [
      ['total', 'Total', money(c.cost_usd || cost.total || 0, cur)],
      ['model', 'Model', money(cost.model || 0, cur)],
      ['stt', 'Speech to text', money(cost.stt || 0, cur)],
      ['tts', 'Text to speech', money(cost.tts || 0, cur)],
      ['telephony', 'Telephony', money(cost.telephony || 0, cur)],
      ['tokens', 'Tokens in / out', (c.input_tokens || 0) + ' / ' + (c.output_tokens || 0)],
    ];
    $('call-cost').replaceChildren(...items.map(([field, name, value]) =>
      SB.el('div', {'data-field': field}, SB.el('dt', {}, name), SB.el('dd', {}, value))));
    $('cost-part').hidden = false;
    $('call-cost').dataset.total = String(c.cost_usd || cost.total || 0);
  }

  // The stages of a turn, in the order they happen: the caller's end of speech is
  // declared, the audio transcribed, knowledge searched and the model's first words
  // produced, the first of them synthesised.
  const stages = [
    {name: 'End of speech', key: 'end_of_speech_ms'},
    {name: 'Speech to text', key: 'stt_ms'},
    {name: 'Knowledge', key: 'knowledge_ms'},
    {name: 'First token', key: 'first_token_ms'},
    {name: 'TTS first audio', key: 'tts_first_audio_ms'},
  ];

  function renderLatency(metrics) {
    const box = $('call-latency');
    if (!metrics.length) {
      box.replaceChildren();
      box.setAttribute('data-rows', '0');
      $('call-latency-empty').hidden = false;
      return;
    }
    const rows = metrics.map((m, i) => {
      const knowledge = m.knowledge_ms || 0;
      const v = {...m, first_token_ms: Math.max(0, (m.brain_first_token_ms || 0) - knowledge)};
      return {label: 'Turn ' + (i + 1), values: stages.map((s) => v[s.key] || 0), total: m.voice_to_voice_ms};
    });
    SBCharts.stackedRows(box, {rows, segments: stages, format: (v) => Math.round(v) + ' ms', title: 'Latency of each answered turn by stage'});
    $('call-latency-empty').hidden = true;
  }

  function addTurn(list, t) {
    const role = t.role || 'assistant';
    const meta = [role === 'user' ? 'Caller' : role === 'assistant' ? 'Agent' : role];
    if (t.start) meta.push(SB.clock(t.start));
    if (t.metrics && Number.isFinite(t.metrics.voice_to_voice_ms)) meta.push('answered in ' + SB.ms(t.metrics.voice_to_voice_ms));
    if (t.interrupted) meta.push('interrupted');
    let text = t.text || '';
    if (!text && t.dtmf) text = '⌨ ' + t.dtmf;
    if (!text && t.tool) text = '⚙ ' + (t.tool.name || 'tool');
    list.append(SB.el('li', {class: role + (t.interrupted ? ' interrupted' : ''), 'data-role': role},
      SB.el('span', {class: 'bubble'}, text || '…'),
      SB.el('span', {class: 'meta'}, meta.join(' · '))));
  }

  function summary(type, d) {
    d = d || {};
    switch (type) {
      case 'call.transcript':
      case 'call.agent_speech':
        return d.text || (d.dtmf ? 'keys ' + d.dtmf : '');
      case 'call.metrics':
        return 'voice to voice ' + SB.ms(d.voice_to_voice_ms) + ', STT ' + SB.ms(d.stt_ms) + ', first token ' + SB.ms(d.brain_first_token_ms) + ', TTS ' + SB.ms(d.tts_first_audio_ms);
      case 'call.dtmf':
        return d.digit || '';
      case 'call.tool_call':
        return (d.name || 'tool') + (d.error ? ' failed: ' + d.error : '');
      case 'call.amd':
        return (d.result || '') + (d.confidence ? ' (' + d.confidence + ')' : '');
      case 'call.transfer':
        return (d.to || '') + ' ' + (d.status || '');
      case 'call.ended':
        return d.ended_reason || d.status || '';
      case 'call.report':
        return (d.ended_reason || '') + ', ' + (d.turns || 0) + ' turns';
      case 'agent.error':
        return (d.stage || '') + ': ' + (d.error || '');
      case 'call.barge_in':
        return d.dtmf ? 'the caller pressed a key over the agent' : 'the caller spoke over the agent';
      case 'call.events_truncated':
        return 'the rest of the call\'s events were not kept (' + (d.reason || '') + ' after ' + (d.kept || 0) + ')';
      default:
        return d.status || '';
    }
  }

  // errorOf says what went wrong in an event, or '' when nothing did.
  function errorOf(ev) {
    const d = ev.data || {};
    switch (ev.type) {
      case 'agent.error':
        return (d.stage ? d.stage + ': ' : '') + (d.error || 'error') + (d.fallback ? ' (' + d.fallback + ')' : '');
      case 'call.tool_call':
        return d.error ? 'tool ' + (d.name || '') + ': ' + d.error : '';
      case 'call.transfer':
        return d.status === 'failed' || d.status === 'rejected' ? 'transfer to ' + d.to + ' ' + d.status : '';
      default:
        return '';
    }
  }

  function addEvent(list, ev) {
    list.append(SB.el('li', {'data-type': ev.type, 'data-event-id': ev.id},
      SB.el('span', {class: 'num muted'}, SB.clock(ev.time)),
      SB.el('span', {class: 'mono'}, ev.type),
      SB.el('span', {class: 'what', title: summary(ev.type, ev.data)}, summary(ev.type, ev.data))));
  }

  // loadEvents reads the call's kept events, a page at a time, oldest first.
  async function loadEvents(sel, from) {
    const page = await SB.api('GET', '/api/v1/calls/' + encodeURIComponent(sel.id) + '/events?limit=100&offset=' + from);
    if (open !== sel) return null;
    const list = $('call-events');
    for (const ev of page.items || []) {
      addEvent(list, ev);
      sel.events.push(ev);
      const err = errorOf(ev);
      if (err) sel.errors.push({at: ev.time, text: err});
    }
    const shown = from + (page.items || []).length;
    $('call-events-count').textContent = page.total ? shown + ' of ' + page.total : '';
    const more = $('call-events-more');
    more.hidden = shown >= page.total;
    more.textContent = 'Later events…';
    more.onclick = () => loadEvents(sel, shown).then(() => renderErrors(sel));
    list.setAttribute('data-total', String(page.total));
    return page;
  }

  function renderErrors(sel) {
    const c = sel.call;
    const items = [...sel.errors];
    if (c.status === 'failed') items.unshift({at: c.ended_at, text: 'The call failed: ' + (c.ended_reason || 'unknown reason')});
    $('call-errors').replaceChildren(...items.map((e) => SB.el('li', {}, SB.el('span', {class: 'muted'}, SB.clock(e.at) + ' · '), e.text)));
    $('call-errors-empty').hidden = items.length > 0;
  }

  async function renderVoicemail(sel) {
    const c = sel.call;
    const amd = c.amd;
    let shown = false;
    if (amd && amd.result) {
      const parts = ['Answered by ' + (amd.result === 'machine' ? 'an answering machine' : amd.result === 'human' ? 'a person' : amd.result)];
      if (amd.confidence) parts.push('confidence ' + amd.confidence);
      if (amd.message) parts.push((c.ended_reason === 'voicemail' ? 'message left: ' : 'message: ') + '“' + amd.message + '”');
      $('call-amd').textContent = parts.join(' · ');
      $('call-amd').hidden = false;
      shown = true;
    } else {
      $('call-amd').hidden = true;
    }
    // The caller's own voicemail, when the call's workflow took one (its length is on the
    // call's metadata): other calls are not asked for one.
    const note = $('call-voicemail-note');
    if (c.agent_id && !liveStatuses.includes(c.status) && c.metadata && c.metadata.voicemail_seconds != null) {
      const ok = await play('/api/v1/calls/' + encodeURIComponent(c.id) + '/voicemail', $('call-voicemail'), note, 'No voicemail was left.');
      if (open !== sel) return;
      note.hidden = !ok;
      shown = shown || ok;
    }
    $('voicemail-part').hidden = !shown;
  }

  async function openCall(id) {
    for (const u of blobURLs.splice(0)) URL.revokeObjectURL(u);
    const sel = {id, events: [], errors: []};
    open = sel;
    writeAddress();
    const detail = $('call-detail');
    detail.removeAttribute('data-loaded');
    detail.setAttribute('data-call-id', id);
    $('call-none').hidden = true;
    detail.hidden = false;
    for (const l of ['call-transcript', 'call-events', 'call-errors', 'call-facts', 'call-latency']) $(l).replaceChildren();
    $('call-recording-note').textContent = '';
    let c;
    try {
      c = await SB.api('GET', '/api/v1/calls/' + encodeURIComponent(id));
    } catch (e) {
      if (open !== sel) return;
      $('call-title').textContent = 'Call';
      $('call-facts').replaceChildren(...fact('Error', e.message));
      detail.setAttribute('data-loaded', 'error');
      return;
    }
    if (open !== sel) return;
    sel.call = c;
    renderFacts(c);
    renderCost(c);

    const live = liveStatuses.includes(c.status);
    const recording = $('call-recording');
    if (live) {
      recording.hidden = true;
      recording.dataset.state = 'live';
      $('call-recording-note').textContent = 'The recording is complete once the call ends.';
    } else if (!c.recording_url) {
      recording.hidden = true;
      recording.dataset.state = 'none';
      $('call-recording-note').textContent = 'This call was not recorded, or its recording was deleted at the end of its retention.';
    } else {
      play('/api/v1/calls/' + encodeURIComponent(id) + '/recording', recording, $('call-recording-note'), 'The recording is gone.');
    }
    renderVoicemail(sel);

    let turns = [];
    try {
      const t = await SB.api('GET', '/api/v1/calls/' + encodeURIComponent(id) + '/transcript');
      turns = t.turns || [];
    } catch (e) {
      if (e.status !== 404) $('call-transcript-empty').textContent = 'The transcript could not be read: ' + e.message;
    }
    if (open !== sel) return;
    for (const turn of turns) addTurn($('call-transcript'), turn);
    $('call-transcript-empty').hidden = turns.length > 0;

    try {
      await loadEvents(sel, 0);
    } catch (e) {
      $('call-events-count').textContent = 'could not be read: ' + e.message;
    }
    if (open !== sel) return;
    // A turn's latency, from the stored transcript; from the kept call.metrics events when
    // the call has no transcript (a call whose agent's runtime did not write one).
    let metrics = turns.filter((t) => t.role === 'assistant' && t.metrics).map((t) => t.metrics);
    if (!metrics.length) metrics = sel.events.filter((e) => e.type === 'call.metrics').map((e) => e.data);
    renderLatency(metrics);
    renderErrors(sel);
    detail.setAttribute('data-loaded', 'true');
  }

  function wire() {
    $('history-filters').addEventListener('submit', (ev) => {
      ev.preventDefault();
      offset = 0;
      loadPage();
    });
    $('f-clear').addEventListener('click', () => {
      for (const name of filterNames) $(inputs[name]).value = '';
      offset = 0;
      loadPage();
    });
    for (const name of ['agent_id', 'status', 'direction']) {
      $(inputs[name]).addEventListener('change', () => { offset = 0; loadPage(); });
    }
    $('page-newer').addEventListener('click', () => { offset = Math.max(0, offset - limit); loadPage(); });
    $('page-older').addEventListener('click', () => { offset += limit; loadPage(); });
    window.addEventListener('hashchange', () => {
      const id = location.hash.slice(1);
      if (id && (!open || open.id !== id)) select(id);
    });
  }

  SB.signIn(async () => {
    // The call the address opens, read before the list rewrites the address.
    const wanted = location.hash.slice(1);
    readAddress();
    wire();
    try {
      await loadAgents();
    } catch (e) {
      showFilterError(e);
    }
    await loadPage();
    if (wanted) select(wanted);
  });
})();
