// What the browser scripts share: Debian's Chromium, headless, with a fake microphone that
// plays a WAV, driven by playwright-core (which never downloads a browser here).
import { chromium } from 'playwright-core';
import path from 'node:path';

export const greeting = /thank you for calling Switchboard/i;

// launch starts Chromium with the flags of the project's testing notes; audio, when given,
// is the WAV the fake microphone plays (once: %noloop).
export async function launch(audio) {
  const args = [
    '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream', '--autoplay-policy=no-user-gesture-required',
  ];
  if (audio) args.push('--use-file-for-fake-audio-capture=' + path.resolve(audio) + '%noloop');
  return chromium.launch({executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args, timeout: 60_000});
}

// report writes one line of JSON to stdout: the Go test reads them as the steps go.
export function report(step, fields = {}) {
  process.stdout.write(JSON.stringify({step, ...fields}) + '\n');
}

// watch copies what a page logs and any error it throws to stderr, for the test's log.
export function watch(page, name) {
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') process.stderr.write(`[${name} console.${m.type()}] ${m.text()}\n`); });
  page.on('pageerror', (e) => process.stderr.write(`[${name} error] ${e.stack || e}\n`));
}

// signIn signs a page in through its sign-in form: with an API key ({key}), or with an
// email and password ({email, password}).
export async function signIn(page, cred) {
  if (typeof cred === 'string') cred = {key: cred};
  if (cred.key) {
    await page.locator('#signin-key').fill(cred.key);
    await page.locator('#signin-key-form button[type=submit]').click();
  } else {
    await page.locator('#tab-password').click();
    await page.locator('#signin-email').fill(cred.email);
    await page.locator('#signin-password').fill(cred.password);
    await page.locator('#signin-password-form button[type=submit]').click();
  }
  // Generous: on a busy machine Chromium and a -race node take their time to sign in.
  await page.locator('#app').waitFor({state: 'visible', timeout: 30_000});
}

export async function screenshot(page, dir, name) {
  const file = path.join(dir, name + '.png');
  await page.screenshot({path: file, fullPage: true});
  report('screenshot', {file});
  return file;
}

// openDashboard opens the dashboard, signs in, and waits for its event stream to be live.
export async function openDashboard(context, base, cred) {
  const page = await context.newPage();
  watch(page, 'dashboard');
  await page.goto(base + '/dashboard');
  await signIn(page, cred);
  await page.waitForFunction(() => window.switchboard && window.switchboard.stream === 'live', null, {timeout: 30_000});
  return page;
}

// followCall opens a call in the dashboard once it is listed live, and waits for the
// agent's greeting in its live transcript.
export async function followCall(page, callId) {
  const row = callId ? page.locator(`#live-calls tr[data-call-id="${callId}"]`) : page.locator('#live-calls tr').first();
  await row.waitFor({timeout: 20_000});
  const id = await row.getAttribute('data-call-id');
  await row.click();
  await page.locator(`#detail-call[data-call-id="${id}"]`).waitFor({timeout: 5_000});
  await page.locator('#detail-transcript li.assistant', {hasText: greeting}).first().waitFor({timeout: 20_000});
  // The row is listed from the call's first event (ringing); once the agent has greeted,
  // the call is answered and its row must say so.
  const status = await page.locator(`#live-calls tr[data-call-id="${id}"]`).getAttribute('data-status');
  return {id, status};
}

// waitEnded waits for the dashboard to show the followed call ended, with its report and
// stored transcript, and the call among the recent ones; it returns the report as shown.
export async function waitEnded(page, id) {
  await page.locator(`#detail-call[data-call-id="${id}"][data-report="true"][data-transcript="stored"]`).waitFor({timeout: 20_000});
  await page.locator(`#recent-calls tr[data-call-id="${id}"]`).waitFor({timeout: 5_000});
  const live = await page.locator(`#live-calls tr[data-call-id="${id}"]`).count();
  if (live) throw new Error(`call ${id} ended but is still listed live`);
  const status = await page.locator('#detail-call').getAttribute('data-status');
  const shown = {};
  for (const field of await page.locator('#report > div').all()) {
    shown[await field.getAttribute('data-field')] = (await field.locator('dd').textContent()).trim();
  }
  const transcript = await page.locator('#detail-transcript li').allTextContents();
  return {status, report: shown, transcript};
}
