// The analytics of the tenant's calls (GET /api/v1/analytics/calls) drawn as charts: how
// many calls came and were answered, the answer rate, the turn latency percentiles and the
// cost, by hour or day over a range, for all agents or one.
'use strict';

(() => {
  const $ = (id) => document.getElementById(id);
  const ranges = {
    '24h': {hours: 24, bucket: 'hour'},
    '7d': {hours: 7 * 24, bucket: 'day'},
    '30d': {hours: 30 * 24, bucket: 'day'},
    '90d': {hours: 90 * 24, bucket: 'day'},
  };
  let seq = 0;

  function money(v) {
    try {
      return new Intl.NumberFormat(undefined, {style: 'currency', currency: 'USD', minimumFractionDigits: 2, maximumFractionDigits: 4}).format(v || 0);
    } catch {
      return '$' + (v || 0).toFixed(4);
    }
  }

  // label names a bucket in the reader's locale: its hour, or its day.
  function label(iso, bucket) {
    const d = new Date(iso);
    return bucket === 'hour' ? d.toLocaleTimeString(undefined, {hour: '2-digit', minute: '2-digit'}) : d.toLocaleDateString(undefined, {month: 'short', day: 'numeric'});
  }

  // everyBucket returns a bucket for every hour or day of the range, those without calls
  // empty, so that the charts' time axis is even.
  function everyBucket(a) {
    const step = (a.bucket === 'hour' ? 3600 : 86400) * 1000;
    const have = new Map((a.buckets || []).map((b) => [Date.parse(b.start), b]));
    const out = [];
    const start = Math.floor(Date.parse(a.from) / step) * step;
    for (let t = start; t < Date.parse(a.to) && out.length < 1000; t += step) {
      out.push(have.get(t) || {start: new Date(t).toISOString(), calls: 0, answered: 0, cost_usd: 0,
        turn_latency_p50_ms: null, turn_latency_p90_ms: null, turn_latency_p99_ms: null});
    }
    // A bucket the API has that the walk did not meet (another alignment) is kept too.
    for (const b of a.buckets || []) if (!out.includes(b)) out.push(b);
    return out.sort((x, y) => Date.parse(x.start) - Date.parse(y.start));
  }

  async function loadAgents() {
    const list = await SB.api('GET', '/api/v1/agents?limit=100');
    for (const a of list.items || []) $('a-agent').append(SB.el('option', {value: a.id}, a.name));
  }

  function totals(t) {
    const items = [
      ['calls', 'Calls', String(t.calls)],
      ['answered', 'Answered', String(t.answered)],
      ['answer_rate', 'Answer rate', Math.round((t.answer_rate || 0) * 100) + '%'],
      ['turn_latency_p50_ms', 'Latency p50', SB.ms(t.turn_latency_p50_ms ?? NaN)],
      ['turn_latency_p90_ms', 'Latency p90', SB.ms(t.turn_latency_p90_ms ?? NaN)],
      ['cost_usd', 'Cost', money(t.cost_usd)],
    ];
    $('a-totals').replaceChildren(...items.map(([field, name, value]) =>
      SB.el('div', {'data-field': field}, SB.el('dt', {}, name), SB.el('dd', {}, value))));
  }

  async function load() {
    const mine = ++seq;
    const r = ranges[$('a-range').value] || ranges['7d'];
    // The range ends at the end of the current bucket, so that the newest calls count.
    const to = new Date();
    if (r.bucket === 'hour') to.setUTCMinutes(60, 0, 0);
    else to.setUTCHours(24, 0, 0, 0);
    const from = new Date(to.getTime() - r.hours * 3600 * 1000);
    const q = new URLSearchParams({from: from.toISOString(), to: to.toISOString(), bucket: r.bucket});
    if ($('a-agent').value) q.set('agent_id', $('a-agent').value);
    let a;
    try {
      a = await SB.api('GET', '/api/v1/analytics/calls?' + q);
    } catch (e) {
      if (mine !== seq) return;
      $('a-error').textContent = e.message;
      $('a-error').hidden = false;
      return;
    }
    if (mine !== seq) return;
    $('a-error').hidden = true;
    $('a-range-info').textContent = from.toLocaleString() + ' – ' + to.toLocaleString();
    totals(a.total);
    const buckets = everyBucket(a);
    const labels = buckets.map((b) => label(b.start, a.bucket));
    SBCharts.bars($('chart-volume'), {labels, integer: true, title: 'Calls and answered calls by ' + a.bucket, format: (v) => String(Math.round(v)),
      series: [{name: 'Calls', values: buckets.map((b) => b.calls)}, {name: 'Answered', values: buckets.map((b) => b.answered), color: 1}]});
    SBCharts.lines($('chart-answer-rate'), {labels, title: 'Answer rate by ' + a.bucket, max: 1, format: (v) => Math.round(v * 100) + '%',
      series: [{name: 'Answer rate', values: buckets.map((b) => (b.calls ? b.answered / b.calls : null)), color: 1}]});
    SBCharts.lines($('chart-latency'), {labels, title: 'Turn latency percentiles by ' + a.bucket, format: (v) => Math.round(v) + ' ms',
      series: [
        {name: 'p50', values: buckets.map((b) => b.turn_latency_p50_ms)},
        {name: 'p90', values: buckets.map((b) => b.turn_latency_p90_ms), color: 2},
        {name: 'p99', values: buckets.map((b) => b.turn_latency_p99_ms), color: 4},
      ]});
    SBCharts.bars($('chart-cost'), {labels, title: 'Cost by ' + a.bucket, format: money,
      series: [{name: 'Cost (USD)', values: buckets.map((b) => b.cost_usd), color: 3}]});
    document.body.setAttribute('data-analytics', 'ready');
    document.body.setAttribute('data-calls', String(a.total.calls));
  }

  SB.signIn(async () => {
    $('a-range').addEventListener('change', load);
    $('a-agent').addEventListener('change', load);
    $('a-controls').addEventListener('submit', (ev) => { ev.preventDefault(); load(); });
    try {
      await loadAgents();
    } catch (e) {
      $('a-error').textContent = e.message;
      $('a-error').hidden = false;
    }
    await load();
  });
})();
