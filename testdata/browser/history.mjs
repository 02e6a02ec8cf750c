// The call history and analytics pages over calls the Go test made (and a node it restarted
// since, so that nothing comes from the hub's memory).
//
//   node history.mjs BASE_URL ARTIFACT_DIR API_KEY AGENT_ID AGENT_CALL_ID OTHER_CALL_ID NUMBER
//
// With pages of one call it reports the newest ("listed") and the next page ("paged"); the
// calls of the agent ("by-agent") and of a number ("by-number"); then opens the agent's call
// and reports its recording playing ("recording"), its turn latency bars ("latency"), its
// cost ("cost"), its kept events and errors ("events"); then the analytics charts
// ("analytics").
import { launch, report, screenshot, signIn, watch } from './lib.mjs';

const [base, dir, key, agentId, agentCall, otherCall, number] = process.argv.slice(2);
if (!number) {
  console.error('usage: node history.mjs BASE_URL ARTIFACT_DIR API_KEY AGENT_ID AGENT_CALL_ID OTHER_CALL_ID NUMBER');
  process.exit(2);
}

const rows = (page) => page.locator('#history-calls tr').evaluateAll((trs) => trs.map((tr) => tr.dataset.callId));

// listed waits for the list to show exactly ids, and returns them.
async function listed(page, ids) {
  const want = JSON.stringify(ids);
  await page.waitForFunction((w) => {
    const body = document.getElementById('history-calls');
    if (body.hasAttribute('aria-busy')) return false;
    return JSON.stringify([...body.querySelectorAll('tr')].map((tr) => tr.dataset.callId)) === w;
  }, want, {timeout: 20_000});
  return rows(page);
}

const browser = await launch();
let page;
try {
  const context = await browser.newContext({viewport: {width: 1360, height: 900}});
  page = await context.newPage();
  watch(page, 'calls');
  await page.goto(base + '/calls?limit=1');
  await signIn(page, key);

  // Pages of one call, newest first: the other call, then the agent's.
  report('listed', {ids: await listed(page, [otherCall]), info: await page.locator('#page-info').textContent()});
  await page.locator('#page-older').click();
  report('paged', {ids: await listed(page, [agentCall]), info: await page.locator('#page-info').textContent()});

  // By agent (the list starts over at its first page), then by number.
  await page.locator('#f-agent').selectOption(agentId);
  report('by-agent', {ids: await listed(page, [agentCall]), address: page.url()});
  await page.locator('#f-agent').selectOption('');
  await listed(page, [otherCall]);
  await page.locator('#f-q').fill(number);
  await page.locator('#f-apply').click();
  report('by-number', {ids: await listed(page, [agentCall]), address: page.url()});
  await screenshot(page, dir, 'history-filtered');

  // The agent's call: its recording plays in the page.
  await page.locator(`#history-calls tr[data-call-id="${agentCall}"]`).click();
  await page.locator(`#call-detail[data-call-id="${agentCall}"][data-loaded="true"]`).waitFor({timeout: 20_000});
  await page.locator('#call-recording[data-state="ready"]').waitFor({timeout: 20_000});
  const audio = await page.locator('#call-recording').evaluate((a) => new Promise((resolve, reject) => {
    const done = () => resolve({duration: a.duration, src: a.src.slice(0, 5)});
    const timer = setTimeout(() => reject(new Error('the recording never reached canplay')), 15_000);
    const played = () => { clearTimeout(timer); a.play().then(() => { a.pause(); done(); }, reject); };
    if (a.readyState >= 3) played();
    else a.addEventListener('canplay', played, {once: true});
  }));
  report('recording', audio);

  const latency = await page.locator('#call-latency').evaluate((box) => ({
    rows: Number(box.dataset.rows || 0),
    stages: [...new Set([...box.querySelectorAll('rect[data-stage]')].map((r) => r.dataset.stage))],
  }));
  report('latency', latency);

  const cost = await page.locator('#call-cost').evaluate((dl) => ({
    total: Number(dl.dataset.total),
    shown: dl.querySelector('[data-field="total"] dd').textContent,
    model: dl.querySelector('[data-field="model"] dd').textContent,
  }));
  report('cost', cost);

  const events = await page.locator('#call-events li').evaluateAll((lis) => lis.map((li) => li.dataset.type));
  const errors = await page.locator('#call-errors li').allTextContents();
  const transcript = await page.locator('#call-transcript li').allTextContents();
  report('events', {types: events, total: Number(await page.locator('#call-events').getAttribute('data-total')), errors, transcript});
  await screenshot(page, dir, 'call-page');

  // The address keeps the open call: a reload shows it again.
  await page.reload();
  await page.locator(`#call-detail[data-call-id="${agentCall}"][data-loaded="true"]`).waitFor({timeout: 20_000});

  await page.goto(base + '/analytics');
  await page.locator('body[data-analytics="ready"]').waitFor({timeout: 20_000});
  const charts = await page.evaluate(() => {
    const count = (id, sel) => document.querySelectorAll('#' + id + ' ' + sel).length;
    return {
      calls: Number(document.body.dataset.calls),
      volume_bars: count('chart-volume', 'rect[data-series="Calls"]'),
      answered_bars: count('chart-volume', 'rect[data-series="Answered"]'),
      latency_points: count('chart-latency', 'circle[data-series="p50"]'),
      cost_bars: count('chart-cost', 'rect'),
      rate_points: count('chart-answer-rate', 'circle'),
      total_calls: document.querySelector('#a-totals [data-field="calls"] dd').textContent,
    };
  });
  report('analytics', charts);
  await screenshot(page, dir, 'analytics');
} catch (e) {
  if (page) await screenshot(page, dir, 'failure-history').catch(() => {});
  console.error(e && e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
