// The dashboard watching a call that the Go test places over SIP.
//
//   node dashboard.mjs BASE_URL ARTIFACT_DIR API_KEY
//   node dashboard.mjs BASE_URL ARTIFACT_DIR EMAIL PASSWORD
//
// Once signed in and streaming it reports "ready"; the test then dials the demo line. The
// call must appear live, its transcript must show the greeting ("greeting"); the test hangs
// up, and the dashboard must show the call ended with its report and transcript ("ended").
import { launch, report, screenshot, openDashboard, followCall, waitEnded } from './lib.mjs';

const [base, dir, keyOrEmail, password] = process.argv.slice(2);
if (!base || !dir || !keyOrEmail) {
  console.error('usage: node dashboard.mjs BASE_URL ARTIFACT_DIR (API_KEY | EMAIL PASSWORD)');
  process.exit(2);
}
const cred = password ? {email: keyOrEmail, password} : {key: keyOrEmail};

const browser = await launch();
let page;
try {
  const context = await browser.newContext({viewport: {width: 1280, height: 860}});
  page = await openDashboard(context, base, cred);
  report('ready');
  const live = await followCall(page, '');
  await screenshot(page, dir, 'dashboard-sip-live');
  report('greeting', {call_id: live.id, status: live.status});
  const ended = await waitEnded(page, live.id);
  report('ended', {call_id: live.id, ...ended});
  await screenshot(page, dir, 'dashboard-sip-ended');
  // A narrow screen: the same page, one column.
  await page.setViewportSize({width: 420, height: 900});
  await screenshot(page, dir, 'dashboard-sip-ended-narrow');
} catch (e) {
  if (page) await screenshot(page, dir, 'failure-dashboard').catch(() => {});
  console.error(e && e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
