// The dashboard: the tenant's live calls as they come and go (the list, then the tenant's
// event stream), recent calls, agents, and one call followed closely: what is said on it
// (its own event stream, replayed from its start), and once it has ended its report and
// stored transcript.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const liveStatuses = ['queued', 'ringing', 'in-progress'];
  const isLive = (c) => liveStatuses.includes(c.status);
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

  const calls = new Map(); // id → the newest record known
  const agents = new Map(); // id → agent
  let selected = null; // {id, es, seen, final}
  let tenantStream = null;

  // view is what the page shows, for tests.
  window.switchboard = {calls, agents, get selected() { return selected && selected.id; }, stream: 'offline'};

  const time = (iso) => (iso ? Date.parse(iso) : NaN);

  // upsert keeps the newer of two records of a call: lists and events may cross.
  function upsert(c) {
    if (!c || !c.id) return;
    const old = calls.get(c.id);
    if (old) {
      if (!isLive(old) && isLive(c)) return; // a late event of a call that has ended
      if (time(c.updated_at) < time(old.updated_at)) return;
    }
    calls.set(c.id, {...old, ...c});
    scheduleRender();
    // However the end was heard (the tenant's stream or the call's), the report follows.
    if (selected && selected.id === c.id && !isLive(c) && !selected.final && (selected.es || old)) {
      if (selected.es) selected.es.close();
      loadFinal(selected);
    }
  }

  let renderQueued = false;
  function scheduleRender() {
    if (renderQueued) return;
    renderQueued = true;
    queueMicrotask(() => {
      renderQueued = false;
      renderCalls();
      if (selected) renderDetail();
    });
  }

  function agentName(id) {
    if (!id) return '—';
    const a = agents.get(id);
    return a ? a.name : id;
  }

  function caller(c) {
    if (c.direction === 'outbound') return c.to || '—';
    return c.from || (c.direction === 'web' ? 'browser' : '—');
  }

  // elapsed is how long a call has lasted, or rung, so far; an ended call's stored duration.
  function elapsed(c) {
    if (!isLive(c)) return c.duration_seconds || 0;
    const from = time(c.answered_at) || time(c.started_at) || time(c.created_at);
    return Number.isFinite(from) ? (Date.now() - from) / 1000 : 0;
  }

  function badge(status) {
    return SB.el('span', {class: 'badge ' + status}, status);
  }

  function row(c, cells) {
    const tr = SB.el('tr', {'data-call-id': c.id, 'data-status': c.status, 'aria-selected': String(selected !== null && selected.id === c.id), tabindex: '0'}, cells);
    tr.addEventListener('click', () => select(c.id));
    tr.addEventListener('keydown', (e) => { if (e.key === 'Enter') select(c.id); });
    return tr;
  }

  function ticking(c) {
    return SB.el('td', {class: 'num', 'data-tick': c.id}, SB.duration(elapsed(c)));
  }

  function renderCalls() {
    const all = [...calls.values()];
    const live = all.filter(isLive).sort((a, b) => time(b.created_at) - time(a.created_at));
    const recent = all.filter((c) => !isLive(c)).sort((a, b) => (time(b.ended_at) || time(b.created_at)) - (time(a.ended_at) || time(a.created_at))).slice(0, 20);
    $('live-calls').replaceChildren(...live.map((c) => row(c, [
      SB.el('td', {}, badge(c.status)),
      SB.el('td', {}, agentName(c.agent_id) === '—' && c.destination ? c.destination : agentName(c.agent_id)),
      SB.el('td', {class: 'mono'}, caller(c)),
      SB.el('td', {class: 'hide-narrow'}, c.direction),
      ticking(c),
    ])));
    $('live-empty').hidden = live.length > 0;
    $('live-count').textContent = live.length ? live.length + ' live' : '';
    $('recent-calls').replaceChildren(...recent.map((c) => row(c, [
      SB.el('td', {class: 'num'}, SB.when(c.ended_at || c.created_at)),
      SB.el('td', {}, badge(c.status)),
      SB.el('td', {}, c.agent_id ? agentName(c.agent_id) : c.destination || '—'),
      SB.el('td', {class: 'mono'}, caller(c)),
      SB.el('td', {class: 'num'}, SB.duration(c.duration_seconds)),
      SB.el('td', {class: 'hide-narrow'}, c.ended_reason || ''),
    ])));
    $('recent-empty').hidden = recent.length > 0;
    $('recent-count').textContent = recent.length ? recent.length + ' shown' : '';
  }

  // Durations tick once a second, in place, so that rows are not rebuilt under a click.
  function tick() {
    for (const td of document.querySelectorAll('[data-tick]')) {
      const c = calls.get(td.getAttribute('data-tick'));
      if (c) td.textContent = SB.duration(elapsed(c));
    }
  }

  async function loadAgents() {
    const list = await SB.api('GET', '/api/v1/agents?limit=100');
    agents.clear();
    for (const a of list.items || []) agents.set(a.id, a);
    $('agents').replaceChildren(...[...agents.values()].map((a) => SB.el('li', {'data-agent-id': a.id},
      SB.el('div', {class: 'name'}, a.name),
      SB.el('div', {class: 'muted small'}, a.workflow_id ? 'Workflow' : a.model || ''),
      SB.el('div', {class: 'mono muted'}, a.id),
      SB.el('div', {class: 'actions'}, SB.el('a', {href: '/call?agent=' + encodeURIComponent(a.id)}, 'Call from the browser')))));
    $('agents-empty').hidden = agents.size > 0;
    $('agents-count').textContent = agents.size ? String(agents.size) : '';
    scheduleRender();
  }

  async function loadCalls() {
    const [live, ringing, recent] = await Promise.all([
      SB.api('GET', '/api/v1/calls?status=in-progress&limit=100'),
      SB.api('GET', '/api/v1/calls?status=ringing&limit=100'),
      SB.api('GET', '/api/v1/calls?limit=20'),
    ]);
    for (const c of [...recent.items, ...ringing.items, ...live.items]) upsert(c);
    // A call listed live before that no list names live now ended while the stream was away.
    const listed = new Set([...live.items, ...ringing.items].map((c) => c.id));
    for (const c of calls.values()) {
      if (isLive(c) && !listed.has(c.id) && !recent.items.some((r) => r.id === c.id)) {
        SB.api('GET', '/api/v1/calls/' + encodeURIComponent(c.id)).then(upsert, () => {});
      }
    }
  }

  function setStream(s) {
    window.switchboard.stream = s;
    const b = $('stream');
    b.textContent = s === 'live' ? 'live' : s;
    b.className = 'badge ' + (s === 'live' ? 'live' : s === 'offline' ? 'error' : 'connecting');
  }

  // The tenant's stream carries every call's life cycle, each event with the call's record.
  function connectTenant() {
    const es = tenantStream = new EventSource(SB.withToken('/api/v1/events?topics=tenant'));
    let opened = false;
    for (const type of ['call.created', 'call.ringing', 'call.answered', 'call.ended']) {
      es.addEventListener(type, (m) => upsert(parse(m.data).data));
    }
    es.addEventListener('agent.updated', () => loadAgents().catch(() => {}));
    es.addEventListener('stream.gap', () => loadCalls().catch(() => {}));
    es.onopen = () => {
      setStream('live');
      if (opened) loadCalls().catch(() => {}); // what happened while the stream was away
      opened = true;
    };
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED) {
        setStream('reconnecting');
        return;
      }
      // Refused (an access token that expired, say): refresh and open anew.
      setStream('offline');
      setTimeout(async () => {
        if (tenantStream !== es) return;
        await SB.refresh().catch(() => false);
        connectTenant();
        loadCalls().catch(() => {});
      }, 3000);
    };
  }

  function parse(s) {
    try {
      return JSON.parse(s) || {};
    } catch {
      return {};
    }
  }

  // One call, followed closely.
  const callEventTypes = ['call.created', 'call.ringing', 'call.answered', 'call.dtmf', 'call.transcript', 'call.agent_speech',
    'call.metrics', 'call.tool_call', 'call.report', 'call.barge_in', 'call.idle_reminder', 'call.hold', 'call.resumed',
    'call.transfer', 'call.early_media', 'call.amd', 'call.ended', 'agent.error', 'stream.gap', 'message'];

  async function select(id) {
    if (selected && selected.id === id) return;
    if (selected && selected.es) selected.es.close();
    const sel = selected = {id, es: null, seen: new Set(), turns: [], final: false, events: []};
    $('detail-transcript').replaceChildren();
    $('detail-events').replaceChildren();
    $('report').replaceChildren();
    $('report-part').hidden = true;
    $('transcript-title').textContent = 'Live transcript';
    history.replaceState(null, '', '#' + id);
    scheduleRender();
    if (!calls.has(id)) {
      try {
        upsert(await SB.api('GET', '/api/v1/calls/' + encodeURIComponent(id)));
      } catch (e) {
        if (selected === sel) showDetailError(e);
        return;
      }
    }
    if (selected !== sel) return;
    const c = calls.get(id);
    if (isLive(c)) follow(sel);
    else loadFinal(sel);
  }

  function showDetailError(e) {
    $('detail-none').hidden = false;
    $('detail-call').hidden = true;
    $('detail-none').replaceChildren(SB.el('h2', {}, 'Call'), SB.el('p', {class: 'error'}, e.message));
  }

  // follow opens the call's own stream from its first event still kept (since=1), so that
  // what was said before the call was chosen is shown too.
  function follow(sel) {
    const es = sel.es = new EventSource(SB.withToken('/api/v1/events?since=1&topics=' + encodeURIComponent('call:' + sel.id)));
    for (const type of callEventTypes) {
      es.addEventListener(type, (m) => {
        if (selected !== sel) return;
        if (m.lastEventId) {
          if (sel.seen.has(m.lastEventId)) return;
          sel.seen.add(m.lastEventId);
        }
        onCallEvent(sel, type, parse(m.data));
      });
    }
    es.onerror = () => {
      if (es.readyState !== EventSource.CLOSED || selected !== sel || sel.final) return;
      // Refused (an access token that expired, say): refresh, and follow on from the start
      // (what was shown already is skipped) while the call lives.
      setTimeout(async () => {
        if (selected !== sel || sel.final || sel.es !== es) return;
        await SB.refresh().catch(() => false);
        try {
          upsert(await SB.api('GET', '/api/v1/calls/' + encodeURIComponent(sel.id)));
        } catch {
          return;
        }
        if (selected !== sel || sel.final) return;
        if (isLive(calls.get(sel.id))) follow(sel);
        else loadFinal(sel);
      }, 2000);
    };
  }

  function onCallEvent(sel, type, ev) {
    const d = ev.data || {};
    logEvent(type, ev.time, d);
    switch (type) {
      case 'call.transcript':
      case 'call.agent_speech':
        if (sel.final) return;
        addTurn($('detail-transcript'), d);
        $('detail-transcript-empty').hidden = true;
        break;
      case 'call.report':
        renderReport(d);
        break;
      case 'call.created':
      case 'call.ringing':
      case 'call.answered':
        upsert(d);
        break;
      case 'call.ended':
        upsert(d);
        if (sel.es) sel.es.close();
        loadFinal(sel);
        break;
    }
  }

  function summary(type, d) {
    switch (type) {
      case 'call.transcript':
      case 'call.agent_speech':
        return (d.text || (d.dtmf ? 'keys ' + d.dtmf : '')) + (d.metrics ? ' (' + SB.ms(d.metrics.voice_to_voice_ms) + ')' : '');
      case 'call.metrics':
        return 'voice to voice ' + SB.ms(d.voice_to_voice_ms) + ', STT ' + SB.ms(d.stt_ms) + ', TTS ' + SB.ms(d.tts_first_audio_ms);
      case 'call.dtmf':
        return d.digit || d.key || d.digits || JSON.stringify(d);
      case 'call.tool_call':
        return d.name || JSON.stringify(d);
      case 'call.ended':
        return d.ended_reason || '';
      case 'call.report':
        return (d.ended_reason || '') + ', ' + (d.turns || 0) + ' turns';
      case 'agent.error':
        return (d.stage || '') + ': ' + (d.error || '');
      case 'call.barge_in':
        return d.dtmf ? 'the caller pressed a key over the agent' : 'the caller spoke over the agent';
      case 'call.idle_reminder':
        return 'the caller was quiet';
      case 'stream.gap':
        return 'events missed: ' + (d.missed || '?') + ' (' + (d.reason || '') + ')';
      default:
        return d.status || '';
    }
  }

  function logEvent(type, at, d) {
    const li = SB.el('li', {'data-type': type},
      SB.el('span', {class: 'num muted'}, SB.clock(at)),
      SB.el('span', {class: 'mono'}, type),
      SB.el('span', {class: 'what'}, summary(type, d)));
    const list = $('detail-events');
    const atEnd = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    list.append(li);
    if (atEnd) list.scrollTop = list.scrollHeight; // the newest in view, unless the reader scrolled back
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

  // loadFinal reads an ended call's record until its report is in (it is written as the
  // call ends), then its stored transcript.
  async function loadFinal(sel) {
    if (sel.final) return;
    sel.final = true;
    let c = calls.get(sel.id);
    for (let i = 0; i < 20 && selected === sel; i++) {
      try {
        c = await SB.api('GET', '/api/v1/calls/' + encodeURIComponent(sel.id));
        upsert(c);
      } catch (e) {
        break;
      }
      if (!isLive(c) && (!c.agent_id || (c.report && Object.keys(c.report).length))) break;
      await sleep(500);
    }
    if (selected !== sel) return;
    if (c && c.report && Object.keys(c.report).length) renderReport(c.report);
    if (!c || !c.agent_id) return;
    for (let i = 0; i < 10 && selected === sel; i++) {
      try {
        const t = await SB.api('GET', '/api/v1/calls/' + encodeURIComponent(sel.id) + '/transcript');
        if (selected !== sel) return;
        const list = $('detail-transcript');
        list.replaceChildren();
        for (const turn of t.turns || []) addTurn(list, turn);
        $('detail-transcript-empty').hidden = list.children.length > 0;
        $('detail-transcript-empty').textContent = 'Nothing was said.';
        $('transcript-title').textContent = 'Transcript';
        $('detail-call').setAttribute('data-transcript', 'stored');
        return;
      } catch (e) {
        if (e.status !== 404) return;
      }
      await sleep(500);
    }
  }

  function renderReport(r) {
    if (!r || !Object.keys(r).length) return;
    const usage = r.usage || {};
    const items = [
      ['ended_reason', 'Ended by', r.ended_reason || '—'],
      ['duration_seconds', 'Duration', SB.duration(r.duration_seconds)],
      ['turns', 'Turns', String(r.turns ?? 0)],
      // Null when no spoken turn was answered (a call of keys only).
      ['latency_p50_ms', 'Latency p50', r.latency_p50_ms == null ? '–' : SB.ms(r.latency_p50_ms)],
      ['latency_p90_ms', 'Latency p90', r.latency_p90_ms == null ? '–' : SB.ms(r.latency_p90_ms)],
      ['interruptions', 'Interruptions', String(r.interruptions ?? 0)],
      ['usage', 'Tokens in / out', (usage.input_tokens || 0) + ' / ' + (usage.output_tokens || 0)],
    ];
    if (r.tts_characters) items.push(['tts_characters', 'Characters spoken', String(r.tts_characters)]);
    if (r.stt_seconds) items.push(['stt_seconds', 'Speech transcribed', r.stt_seconds.toFixed(1) + ' s']);
    $('report').replaceChildren(...items.map(([field, name, value]) =>
      SB.el('div', {'data-field': field}, SB.el('dt', {}, name), SB.el('dd', {}, value))));
    $('report-part').hidden = false;
    $('detail-call').setAttribute('data-report', 'true');
  }

  function renderDetail() {
    const c = calls.get(selected.id);
    if (!c) return;
    $('detail-none').hidden = true;
    const box = $('detail-call');
    box.hidden = false;
    box.setAttribute('data-call-id', c.id);
    box.setAttribute('data-status', c.status);
    $('detail-title').textContent = c.agent_id ? agentName(c.agent_id) : c.destination ? 'Call to ' + c.destination : 'Call';
    const st = $('detail-status');
    st.textContent = c.status;
    st.className = 'badge ' + c.status;
    const q = c.quality || {};
    const facts = [
      ['Call', SB.el('span', {class: 'mono'}, c.id)],
      ['Direction', c.direction],
      ['From', c.from || '—'],
      ['To', agents.has(c.to) ? agentName(c.to) : c.to || '—'],
      ['Started', SB.when(c.started_at || c.created_at)],
      ['Answered', c.answered_at ? SB.clock(c.answered_at) : '—'],
      ['Ended', c.ended_at ? SB.clock(c.ended_at) + (c.ended_reason ? ' (' + c.ended_reason + ')' : '') : '—'],
      ['Duration', isLive(c) ? SB.el('span', {'data-tick': c.id}, SB.duration(elapsed(c))) : SB.duration(c.duration_seconds)],
    ];
    if (c.codec) facts.push(['Codec', c.codec]);
    if (q.packets_received || q.packets_sent) {
      facts.push(['Media', q.packets_received + ' packets in, ' + q.packets_sent + ' out, ' + (q.loss_percent || 0).toFixed(1) + '% lost, jitter ' + SB.ms(q.jitter_ms)]);
    }
    $('detail-facts').replaceChildren(...facts.flatMap(([k, v]) => [SB.el('dt', {}, k), SB.el('dd', {}, v)]));
  }

  SB.signIn(async () => {
    setInterval(tick, 1000);
    connectTenant();
    try {
      await loadAgents();
      await loadCalls();
    } catch (e) {
      $('live-empty').textContent = 'Could not load the calls: ' + e.message;
    }
    const wanted = location.hash.slice(1);
    if (wanted) select(wanted);
  });
})();
