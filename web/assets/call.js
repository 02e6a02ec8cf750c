// The voice client: a call from this browser to an agent over WebRTC. The microphone goes
// up, the agent's voice comes down and plays, and the call's events (what each side said,
// the latency of each answer, the end) come over the data channel "events".
//
// window.switchboard shows the call's state to tests and to the curious: receivedLevel is
// the RMS level (0 to 1) of the agent's audio now, peakLevel the highest it has been.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const view = window.switchboard = {
    state: 'idle', callId: null, agentId: null, receivedLevel: 0, peakLevel: 0,
    turns: [], events: [], error: null,
  };

  let agents = [];
  let call = null; // the call in progress: {pc, dc, mic, audioCtx, timers…}

  function setState(s, detail) {
    view.state = s;
    const badge = $('state');
    badge.textContent = detail ? s + ' · ' + detail : s;
    badge.className = 'badge ' + s;
    const busy = s === 'connecting' || s === 'connected' || s === 'ringing';
    $('call').disabled = busy || !$('agent').value;
    $('hangup').disabled = !busy;
    $('agent').disabled = busy;
    for (const k of document.querySelectorAll('#keypad [data-key]')) k.disabled = s !== 'connected';
  }

  // A key pressed goes to the call as DTMF over the events channel: menus answer to it as
  // they do to a phone's keys.
  function press(digit) {
    if (!call || !call.dc || call.dc.readyState !== 'open') return;
    call.dc.send(JSON.stringify({type: 'dtmf', digit: digit}));
    view.keys = (view.keys || '') + digit;
  }

  function showError(msg) {
    view.error = msg;
    $('error').textContent = msg;
    $('error').hidden = !msg;
  }

  // The agents of the tenant, the demo receptionist among them on a fresh start.
  async function loadAgents() {
    const select = $('agent');
    try {
      const list = await SB.api('GET', '/api/v1/agents?limit=100');
      agents = list.items || [];
    } catch (e) {
      showError('Could not list the agents: ' + e.message);
      return;
    }
    select.replaceChildren(...agents.map((a) => SB.el('option', {value: a.id}, a.name)));
    if (!agents.length) {
      select.append(SB.el('option', {value: ''}, 'No agents yet'));
    }
    const wanted = new URLSearchParams(location.search).get('agent');
    if (wanted && agents.some((a) => a.id === wanted)) select.value = wanted;
    describeAgent();
    setState(view.state);
  }

  function describeAgent() {
    const a = agents.find((x) => x.id === $('agent').value);
    const about = $('agent-about');
    if (!a) {
      about.textContent = '';
      return;
    }
    const what = a.workflow_id ? 'Workflow agent' : 'Model ' + (a.model || '?');
    const voice = a.voice && a.voice.provider ? ' · voice ' + a.voice.provider + (a.voice.voice ? ' ' + a.voice.voice : '') : '';
    about.textContent = what + voice;
  }

  // The transcript of this call, as the data channel tells it.
  let pendingMetrics = null;

  function addTurn(role, text, extra) {
    const turn = {role, text, ...extra};
    view.turns.push(turn);
    const meta = [role === 'user' ? 'You' : role === 'assistant' ? 'Agent' : role];
    if (turn.at) meta.push(SB.clock(turn.at));
    if (Number.isFinite(turn.latencyMs)) meta.push('answered in ' + SB.ms(turn.latencyMs));
    if (turn.dtmf) meta.push('keys ' + turn.dtmf);
    const li = SB.el('li', {class: role + (turn.interrupted ? ' interrupted' : ''), 'data-role': role},
      SB.el('span', {class: 'bubble'}, text || (turn.dtmf ? '⌨ ' + turn.dtmf : '…')),
      SB.el('span', {class: 'meta'}, meta.join(' · ')));
    $('transcript').append(li);
    $('transcript-empty').hidden = true;
    $('turns').textContent = view.turns.length + (view.turns.length === 1 ? ' turn' : ' turns');
    const box = $('transcript-scroll');
    box.scrollTop = box.scrollHeight;
  }

  function onEvent(raw) {
    let ev;
    try {
      ev = JSON.parse(raw);
    } catch {
      return;
    }
    if (!ev || typeof ev.type !== 'string') return;
    view.events.push(ev);
    const d = ev.data || {};
    switch (ev.type) {
      case 'call.transcript':
        addTurn(d.role || 'user', d.text || '', {at: d.start, dtmf: d.dtmf});
        break;
      case 'call.agent_speech': {
        const m = d.metrics || pendingMetrics;
        pendingMetrics = null;
        const latency = m && Number.isFinite(m.voice_to_voice_ms) ? m.voice_to_voice_ms : undefined;
        addTurn(d.role || 'assistant', d.text || '', {at: d.start, interrupted: d.interrupted, latencyMs: latency});
        break;
      }
      case 'call.metrics':
        pendingMetrics = d;
        if (Number.isFinite(d.voice_to_voice_ms)) {
          $('latency').textContent = 'Last answer: ' + SB.ms(d.voice_to_voice_ms) + ' voice to voice' +
            (Number.isFinite(d.tts_first_audio_ms) ? ' (speech synthesis ' + SB.ms(d.tts_first_audio_ms) + ')' : '');
        }
        break;
      case 'call.report':
        if (Number.isFinite(d.latency_p50_ms) && d.turns) {
          $('latency').textContent = d.turns + ' answered turns · latency p50 ' + SB.ms(d.latency_p50_ms) + ', p90 ' + SB.ms(d.latency_p90_ms);
        }
        break;
      case 'call.answered':
        setState('connected');
        break;
      case 'call.ended':
        finish(d.ended_reason || d.reason || 'ended');
        break;
      case 'agent.error':
        showError('The agent had a problem (' + (d.stage || '?') + '): ' + (d.error || '') + (d.fallback ? '; it went on with ' + d.fallback : ''));
        break;
    }
  }

  // The level meter: an AnalyserNode on the remote stream, read twenty times a second. The
  // stream is played by the <audio> element too: Chromium gives a Web Audio source of a
  // remote track silence unless an element plays it.
  function meter(stream) {
    const ctx = call.audioCtx;
    const source = ctx.createMediaStreamSource(stream);
    const analyser = ctx.createAnalyser();
    analyser.fftSize = 1024;
    source.connect(analyser);
    ctx.resume().catch(() => {});
    const buf = new Float32Array(analyser.fftSize);
    let shown = 0;
    call.meterTimer = setInterval(() => {
      analyser.getFloatTimeDomainData(buf);
      let sum = 0;
      for (const v of buf) sum += v * v;
      const rms = Math.sqrt(sum / buf.length);
      view.receivedLevel = rms;
      view.peakLevel = Math.max(view.peakLevel, rms);
      shown = Math.max(rms, shown * 0.8);
      const db = shown > 0 ? 20 * Math.log10(shown) : -100;
      const pct = Math.max(0, Math.min(100, (db + 60) / 60 * 100));
      $('meter-fill').style.width = pct.toFixed(0) + '%';
      $('meter-fill').parentElement.setAttribute('aria-valuenow', pct.toFixed(0));
      $('level').textContent = db > -100 ? db.toFixed(0) + ' dBFS' : '–';
    }, 50);
  }

  // iceGathered resolves when the browser has gathered its candidates, or after limit:
  // the offer goes whole (no trickle), with what was found by then.
  function iceGathered(pc, limit) {
    if (pc.iceGatheringState === 'complete') return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        pc.removeEventListener('icegatheringstatechange', check);
        resolve();
      };
      const check = () => { if (pc.iceGatheringState === 'complete') done(); };
      const timer = setTimeout(done, limit);
      pc.addEventListener('icegatheringstatechange', check);
    });
  }

  async function iceServers() {
    try {
      const cfg = await SB.api('GET', '/api/v1/webrtc/config');
      return (cfg && (cfg.ice_servers || cfg.iceServers)) || [];
    } catch (e) {
      if (e.status === 404) return []; // a server without the route: host candidates only
      throw e;
    }
  }

  async function start() {
    const agentId = $('agent').value;
    if (!agentId || call) return;
    showError('');
    $('transcript').replaceChildren();
    $('transcript-empty').hidden = false;
    $('turns').textContent = '';
    $('latency').textContent = '';
    $('call-id').textContent = '';
    Object.assign(view, {callId: null, agentId, turns: [], events: [], receivedLevel: 0, peakLevel: 0, error: null});
    pendingMetrics = null;
    // Made in the click, so that it may play.
    call = {audioCtx: new AudioContext(), ended: false};
    const mine = call;
    setState('connecting');
    try {
      mine.mic = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: true, noiseSuppression: true, autoGainControl: true}, video: false});
      const servers = await iceServers();
      if (mine.ended) return;
      const pc = mine.pc = new RTCPeerConnection({iceServers: servers});
      // The channel is made before the offer, so that the offer carries it.
      const dc = mine.dc = pc.createDataChannel('events');
      dc.onmessage = (m) => { if (call === mine) onEvent(m.data); };
      for (const track of mine.mic.getTracks()) pc.addTrack(track, mine.mic);
      pc.ontrack = (e) => {
        if (call !== mine || mine.remote) return;
        mine.remote = e.streams[0] || new MediaStream([e.track]);
        const audio = $('remote');
        audio.srcObject = mine.remote;
        audio.play().catch(() => {});
        meter(mine.remote);
      };
      pc.onconnectionstatechange = () => {
        if (call !== mine) return;
        switch (pc.connectionState) {
          case 'connected':
            setState('connected');
            break;
          case 'disconnected':
            // The network changed (Wi-Fi to mobile data) or dropped: restart ICE over the
            // call's session; the server keeps the call meanwhile.
            restartIce(mine);
            break;
          case 'failed':
            restartIce(mine).then((ok) => {
              if (ok || call !== mine) return;
              showError('The connection to the server failed.');
              finish('connection-failed');
            });
            break;
          case 'closed':
            finish('closed');
            break;
        }
      };
      await pc.setLocalDescription(await pc.createOffer());
      await iceGathered(pc, 2000);
      if (mine.ended) return;
      const session = await SB.api('POST', SB.withToken('/api/v1/webrtc/sessions'), {agent_id: agentId, sdp: pc.localDescription.sdp});
      mine.id = view.callId = session.id;
      $('call-id').textContent = session.id;
      if (mine.ended) { // hung up while the server answered
        hangupSession(session.id);
        return;
      }
      await pc.setRemoteDescription({type: 'answer', sdp: session.sdp});
      mine.started = Date.now();
      mine.clock = setInterval(() => { $('timer').textContent = SB.duration((Date.now() - mine.started) / 1000); }, 250);
    } catch (e) {
      if (call !== mine) return;
      console.error('switchboard: call:', e);
      showError(e.name === 'NotAllowedError' ? 'The browser did not allow the microphone.' :
        e.status === 404 && !mine.id ? 'This server does not take WebRTC calls: ' + e.message : 'The call failed: ' + e.message);
      finish('error');
    }
  }

  // restartIce sends the server a new offer with new ICE credentials, gathered on the
  // network the browser has now, and takes its answer: the call goes on, one call with
  // one record. It says whether the server took it; one restart runs at a time.
  async function restartIce(mine) {
    if (!mine.id || mine.ended) return false;
    if (mine.restarting) return mine.restarting;
    mine.restarting = (async () => {
      try {
        const pc = mine.pc;
        await pc.setLocalDescription(await pc.createOffer({iceRestart: true}));
        await iceGathered(pc, 2000);
        const r = await fetch(SB.withToken('/api/v1/webrtc/sessions/' + encodeURIComponent(mine.id)),
          {method: 'PATCH', headers: {'Content-Type': 'application/sdp'}, body: pc.localDescription.sdp, cache: 'no-store'});
        if (!r.ok) throw new Error('HTTP ' + r.status);
        await pc.setRemoteDescription({type: 'answer', sdp: await r.text()});
        return true;
      } catch (e) {
        console.warn('switchboard: ICE restart:', e);
        return false;
      } finally {
        mine.restarting = null;
      }
    })();
    return mine.restarting;
  }

  function hangupSession(id) {
    return SB.api('DELETE', SB.withToken('/api/v1/webrtc/sessions/' + encodeURIComponent(id))).catch((e) => {
      if (e.status !== 404) console.warn('switchboard: hang up:', e);
    });
  }

  async function hangup() {
    const c = call;
    if (!c) return;
    setState('ending');
    if (c.id) await hangupSession(c.id);
    finish('hangup');
  }

  // finish tears the call down once; what it showed stays on the page.
  function finish(reason) {
    const c = call;
    if (!c || c.ended) return;
    c.ended = true;
    call = null;
    clearInterval(c.clock);
    clearInterval(c.meterTimer);
    if (c.dc) c.dc.close();
    if (c.pc) c.pc.close();
    if (c.mic) for (const t of c.mic.getTracks()) t.stop();
    if (c.audioCtx) c.audioCtx.close().catch(() => {});
    $('remote').srcObject = null;
    view.receivedLevel = 0;
    $('meter-fill').style.width = '0%';
    $('level').textContent = '–';
    setState(reason === 'error' || reason === 'connection-failed' ? 'error' : 'ended', reason === 'error' ? '' : reason);
  }

  SB.signIn(() => {
    $('agent').addEventListener('change', () => { describeAgent(); setState(view.state); });
    $('call').addEventListener('click', start);
    $('hangup').addEventListener('click', hangup);
    for (const k of document.querySelectorAll('#keypad [data-key]')) {
      k.addEventListener('click', () => press(k.dataset.key));
    }
    // A browser that joins another network restarts ICE at once, before its old path
    // is found dead.
    window.addEventListener('online', () => { if (call && call.pc) restartIce(call); });
    // Leaving the page ends the call rather than leaving it to the server's timeouts.
    window.addEventListener('pagehide', () => {
      if (!call || !call.id) return;
      fetch(SB.withToken('/api/v1/webrtc/sessions/' + encodeURIComponent(call.id)), {method: 'DELETE', keepalive: true}).catch(() => {});
    });
    loadAgents();
  });
})();
