// A call from the voice client to the demo agent, watched on the dashboard.
//
//   node call.mjs BASE_URL API_KEY ARTIFACT_DIR CALLER_WAV
//
// The voice client is opened at / (a browser gets it there), signed in already by the
// dashboard's sign-in with the key, which every tab shares; the demo agent is chosen and
// called over WebRTC with the WAV as microphone. The greeting must be heard (the level of
// the received audio) and read (the data channel's transcript). The dashboard, in a second page, must list the call live, follow its transcript, and once
// the voice client hangs up, show it ended with its report. Steps go to stdout as JSON
// lines; screenshots go to ARTIFACT_DIR.
import { launch, report, watch, screenshot, openDashboard, followCall, waitEnded, greeting } from './lib.mjs';

const [base, key, dir, wav] = process.argv.slice(2);
if (!base || !key || !dir || !wav) {
  console.error('usage: node call.mjs BASE_URL API_KEY ARTIFACT_DIR CALLER_WAV');
  process.exit(2);
}

const browser = await launch(wav);
let voice;
try {
  const context = await browser.newContext({viewport: {width: 1280, height: 860}});
  await context.grantPermissions(['microphone'], {origin: base});
  const dashboard = await openDashboard(context, base, key);
  report('dashboard');

  voice = await context.newPage();
  watch(voice, 'voice');
  const nav = await voice.goto(base + '/');
  if (!(nav.headers()['content-type'] || '').startsWith('text/html')) throw new Error('GET / in a browser is not a page: ' + nav.headers()['content-type']);
  // Signed in already: the dashboard's sign-in is every tab's.
  await voice.locator('#app').waitFor({state: 'visible', timeout: 30_000});
  await voice.locator('#agent option', {hasText: 'Demo receptionist'}).first().waitFor({state: 'attached', timeout: 10_000});
  await voice.selectOption('#agent', {label: 'Demo receptionist'});
  await screenshot(voice, dir, '1-voice-client-ready');
  await voice.locator('#call').click();

  const callId = await voice.waitForFunction(() => window.switchboard.callId || window.switchboard.error, null, {timeout: 15_000}).then((h) => h.jsonValue());
  const error = await voice.evaluate(() => window.switchboard.error);
  if (error || !String(callId).startsWith('call_')) throw new Error('the call did not start: ' + (error || callId));
  report('calling', {call_id: callId});
  // The dashboard follows the call while the voice client talks: the demo's menu waits a
  // few seconds for a key, not for a busy machine's browser.
  const following = followCall(dashboard, callId);
  following.catch(() => {});

  // Heard: the agent's greeting on the remote track, measured by the page's analyser.
  await voice.waitForFunction(() => window.switchboard.receivedLevel > 0.01, null, {timeout: 20_000, polling: 50});
  // Read: the greeting's text from the data channel.
  await voice.locator('#transcript li.assistant', {hasText: greeting}).first().waitFor({timeout: 20_000});
  const heard = await voice.evaluate(() => ({peak: window.switchboard.peakLevel, state: window.switchboard.state, turns: window.switchboard.turns}));
  report('greeting', {peak_level: heard.peak, state: heard.state, turns: heard.turns});
  const stats = await voice.evaluate(() => window.switchboard.events.length);
  report('events', {count: stats});

  // Pressed: key 1 on the page's keypad reaches the demo's menu, which tells the hours.
  await voice.locator('#keypad [data-key="1"]').click();
  await voice.locator('#transcript li.assistant', {hasText: /Monday to Friday/}).first().waitFor({timeout: 30_000});
  report('key', {keys: await voice.evaluate(() => window.switchboard.keys)});
  const live = await following;
  report('live', {call_id: live.id, status: live.status});
  await screenshot(voice, dir, '2-voice-client-in-call');
  await screenshot(dashboard, dir, '3-dashboard-live-call');

  await voice.locator('#hangup').click();
  await voice.waitForFunction(() => window.switchboard.state === 'ended', null, {timeout: 10_000});
  report('hung-up');

  const ended = await waitEnded(dashboard, callId);
  report('ended', ended);
  await screenshot(voice, dir, '4-voice-client-ended');
  await screenshot(dashboard, dir, '5-dashboard-ended-call');
} catch (e) {
  if (voice) await screenshot(voice, dir, 'failure-voice-client').catch(() => {});
  console.error(e && e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
