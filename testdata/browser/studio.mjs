// The studio, as a new operator meets it: the sign-in card says how to get in; a user signs
// in with email and password, and a second tab is signed in too; a tool (first with a bad
// webhook URL, which the API refuses next to its field), a knowledge base with a document,
// an agent with both (then edited), a number (then deleted, confirmed in the page) and a
// trunk are made in the page; the agent is called from the voice client; the tabs refresh the sign-in in turn,
// and signing out in one signs out all; a key made in the page is shown once, and not
// after a reload.
//
//   node studio.mjs BASE_URL ARTIFACT_DIR EMAIL PASSWORD CALLER_WAV DOCUMENT TOOL_URL MODEL
//
// Steps go to stdout as JSON lines (the Go test checks them against the API); screenshots
// go to ARTIFACT_DIR.
import { launch, report, watch, signIn, screenshot } from './lib.mjs';

const [base, dir, email, password, wav, doc, toolURL, model] = process.argv.slice(2);
if (!model) {
  console.error('usage: node studio.mjs BASE_URL ARTIFACT_DIR EMAIL PASSWORD CALLER_WAV DOCUMENT TOOL_URL MODEL');
  process.exit(2);
}

// view waits for the studio to have drawn a view: a name ("tools"), or a pattern of one.
async function view(page, want) {
  await page.waitForFunction((w) => {
    const ready = document.getElementById('view').getAttribute('data-ready') || '';
    return w.re ? new RegExp(w.re).test(ready) : ready === w.name;
  }, typeof want === 'string' ? {name: want} : {re: want.source}, {timeout: 30_000});
  return page.locator('#view').getAttribute('data-ready');
}

// open goes to a section with the side navigation.
async function open(page, section) {
  await page.locator(`#sections a[data-view="${section}"]`).click();
  return view(page, section);
}

async function create(page, section) {
  await page.locator('#new-' + section).click();
  await view(page, section + '/new');
}

async function submit(page, form) {
  await page.locator(`#${form} .form-actions button[type=submit]`).click();
}

// made waits for a create to land on the new item's form, and returns its ID.
async function made(page, section) {
  const ready = await view(page, new RegExp('^' + section + '/(?!new$).+'));
  return ready.slice(section.length + 1);
}

const browser = await launch(wav);
let page;
try {
  const context = await browser.newContext({viewport: {width: 1280, height: 900}});
  await context.grantPermissions(['microphone', 'clipboard-read', 'clipboard-write'], {origin: base});

  // First run: nobody is signed in, and the card says how to get a key or a user.
  page = await context.newPage();
  watch(page, 'studio');
  await page.goto(base + '/studio');
  const help = await page.locator('#signin-help').innerText({timeout: 30_000});
  report('first-run', {help});
  await screenshot(page, dir, '1-sign-in');
  await signIn(page, {email, password});
  await view(page, 'agents');

  // A second tab is signed in already.
  const second = await context.newPage();
  watch(second, 'studio-2');
  await second.goto(base + '/studio#tools');
  await second.locator('#app').waitFor({state: 'visible', timeout: 30_000});
  await view(second, 'tools');
  report('shared', {signin_shown: await second.locator('#signin').isVisible(), who: await second.locator('#who-name').innerText()});

  // A tool: a webhook URL without its scheme is refused, next to the field.
  await open(page, 'tools');
  await create(page, 'tools');
  await page.locator('#form-tools-name').fill('lookup_order');
  await page.locator('#form-tools-description').fill('Looks up an order by its number.');
  await page.locator('#form-tools-webhook-url').fill('orders.example.com/lookup');
  await submit(page, 'form-tools');
  const fieldError = page.locator('#form-tools [data-error-for="webhook.url"]');
  await fieldError.waitFor({state: 'visible', timeout: 15_000});
  report('invalid', {
    field: 'webhook.url', message: await fieldError.innerText(),
    aria_invalid: await page.locator('#form-tools-webhook-url').getAttribute('aria-invalid'),
    others: await page.locator('#form-tools .field-error:not([hidden])').count(),
  });
  await screenshot(page, dir, '2-tool-refused');
  await page.locator('#form-tools-webhook-url').fill(toolURL);
  await submit(page, 'form-tools');
  const toolId = await made(page, 'tools');
  report('tool', {id: toolId});

  // A knowledge base, with a document that is processed until ready.
  await open(page, 'knowledge');
  await create(page, 'knowledge');
  await page.locator('#form-knowledge-name').fill('Opening hours');
  await submit(page, 'form-knowledge');
  const baseId = await made(page, 'knowledge');
  await page.locator('#document-file').setInputFiles(doc);
  await page.locator('#document-upload').click();
  await page.locator('#documents li[data-status="ready"]').waitFor({timeout: 60_000});
  report('knowledge', {id: baseId});

  // The agent, with the tool and the base, a model the server lists, and the stand-in
  // transcriber.
  await open(page, 'agents');
  await create(page, 'agents');
  await page.locator('#form-agents-name').fill('Studio receptionist');
  await page.locator('#form-agents-instructions').fill('You tell callers when the shop is open.');
  await page.locator('#form-agents-first_message').fill('Hello.');
  await page.selectOption('#form-agents-model', model);
  await page.locator('#form-agents-transcriber-provider').fill('voice');
  await page.locator(`#form-agents-tool_ids input[value="${toolId}"]`).check();
  await page.locator(`#form-agents-knowledge_base_ids input[value="${baseId}"]`).check();
  // A turn setting out of range is refused next to its nested field; fixed, it is kept.
  await page.locator('#form-agents-turn-endpointing_ms').fill('50');
  await submit(page, 'form-agents');
  const turnError = page.locator('#form-agents [data-error-for="turn.endpointing_ms"]');
  await turnError.waitFor({state: 'visible', timeout: 15_000});
  report('invalid-turn', {message: await turnError.innerText()});
  await page.locator('#form-agents-turn-endpointing_ms').fill('700');
  await submit(page, 'form-agents');
  const agentId = await made(page, 'agents');
  // Edited: the first message changed and saved; the greeting the caller hears says so.
  await page.locator('#form-agents-first_message').fill('Hello from the studio.');
  await submit(page, 'form-agents');
  await page.locator('#saved', {hasText: 'Saved.'}).waitFor({timeout: 15_000});
  report('agent', {id: agentId});
  await screenshot(page, dir, '3-agent-made');

  // A number for it, deleted again once the page has asked.
  await open(page, 'numbers');
  await create(page, 'numbers');
  await page.locator('#form-numbers-number').fill('+15550123');
  await page.selectOption('#form-numbers-agent_id', agentId);
  await submit(page, 'form-numbers');
  const numberId = await made(page, 'numbers');
  await page.locator('#delete').click();
  await page.locator('#confirm').waitFor({state: 'visible', timeout: 5_000});
  await screenshot(page, dir, '4-delete-asked');
  await page.locator('#confirm-yes').click();
  await view(page, 'numbers');
  report('number', {id: numberId, listed: await page.locator(`#numbers-list tr[data-id="${numberId}"]`).count()});

  // A trunk, with a password that is sent once and never shown back.
  await open(page, 'trunks');
  await create(page, 'trunks');
  await page.locator('#form-trunks-name').fill('Carrier');
  await page.selectOption('#form-trunks-direction', 'both');
  await page.locator('#form-trunks-inbound-allowed_cidrs').fill('198.51.100.0/24');
  await page.locator('#form-trunks-outbound-address').fill('sip.carrier.test');
  await page.locator('#form-trunks-outbound-username').fill('acme');
  await page.locator('#form-trunks-outbound-password').fill('trunk secret');
  await submit(page, 'form-trunks');
  const trunkId = await made(page, 'trunks');
  report('trunk', {id: trunkId, password_shown: await page.locator('#form-trunks-outbound-password').inputValue()});

  // The agent called from the voice client, signed in already in its tab.
  const voice = await context.newPage();
  watch(voice, 'voice');
  await voice.goto(base + '/call?agent=' + encodeURIComponent(agentId));
  await voice.locator('#app').waitFor({state: 'visible', timeout: 30_000});
  await voice.locator(`#agent option[value="${agentId}"]`).waitFor({state: 'attached', timeout: 10_000});
  await voice.selectOption('#agent', agentId);
  await voice.locator('#call').click();
  const callId = await voice.waitForFunction(() => window.switchboard.callId || window.switchboard.error, null, {timeout: 20_000}).then((h) => h.jsonValue());
  const callError = await voice.evaluate(() => window.switchboard.error);
  if (callError || !String(callId).startsWith('call_')) throw new Error('the call did not start: ' + (callError || callId));
  report('calling', {call_id: callId});
  await voice.locator('#transcript li.assistant', {hasText: /Hello from the studio/}).first().waitFor({timeout: 30_000});
  report('greeting');
  await voice.locator('#transcript li.assistant', {hasText: /Monday to Friday/}).first().waitFor({timeout: 60_000});
  report('answer');
  await screenshot(voice, dir, '5-voice-client');
  await voice.locator('#hangup').click();
  await voice.waitForFunction(() => window.switchboard.state === 'ended', null, {timeout: 15_000});
  report('hung-up');

  // Two tabs refresh the sign-in at once: one of the three (the refresher) does, the others
  // take what it got (a refresh token is good once), and both still work.
  const stale = await page.evaluate(() => SB.token());
  const [r1, r2] = await Promise.all([page.evaluate(() => SB.refresh()), second.evaluate(() => SB.refresh())]);
  const turns = [];
  for (const p of [page, second, voice]) turns.push(...await p.evaluate(() => SB.refreshes));
  const fresh = await page.evaluate(() => SB.token());
  const me = await Promise.all([page, second].map((p) => p.evaluate(() => SB.api('GET', '/api/v1/auth/me').then((m) => m.user_id, (e) => 'error: ' + e.message))));
  report('refreshed', {ok: [r1, r2], turns, changed: fresh !== stale, same: fresh === await second.evaluate(() => SB.token()), me});

  // A refresh planned from the expiry: another tab says the token expires in a minute, and
  // the tabs refresh it before then.
  await voice.evaluate(() => {
    const c = JSON.parse(localStorage.getItem('switchboard.credential'));
    c.expires = Date.now() + 62_000;
    localStorage.setItem('switchboard.credential', JSON.stringify(c));
  });
  await page.waitForFunction((t) => SB.token() !== t, fresh, {timeout: 30_000});
  const planned = await page.evaluate(() => SB.api('GET', '/api/v1/auth/me').then((m) => m.user_id, (e) => 'error: ' + e.message));
  report('planned-refresh', {me: planned});

  // Signing out in one tab signs out all.
  await second.locator('#signout').click();
  for (const p of [page, voice]) await p.locator('#signin-key-form').waitFor({state: 'visible', timeout: 30_000});
  report('signed-out', {stored: await page.evaluate(() => localStorage.getItem('switchboard.credential'))});

  // A key made in the page: shown once, with a copy button.
  await signIn(page, {email, password});
  await open(page, 'keys');
  await page.locator('#form-keys-name').fill('made in the studio');
  await submit(page, 'form-keys');
  const shown = page.locator('#created-key');
  await shown.waitFor({state: 'visible', timeout: 15_000});
  const key = await shown.inputValue();
  await page.locator('#copy-key').click();
  const copied = await page.evaluate(() => navigator.clipboard.readText()).catch((e) => 'clipboard: ' + e.message);
  report('key', {key, copied, listed: await page.locator('#keys-list tbody tr').count()});
  await screenshot(page, dir, '6-key-shown-once');

  await page.reload();
  await view(page, 'keys');
  const html = await page.content();
  const stored = await page.evaluate(() => JSON.stringify({...localStorage}) + JSON.stringify({...sessionStorage}));
  report('key-gone', {in_page: html.includes(key), in_storage: stored.includes(key), shown: await page.locator('#created-key').count(),
    rows: await page.locator('#keys-list tbody tr').allInnerTexts()});
} catch (e) {
  if (page) await screenshot(page, dir, 'failure-studio').catch(() => {});
  console.error(e && e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
