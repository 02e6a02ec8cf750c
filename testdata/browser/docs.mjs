// The documentation pages, offline: /redoc and /docs must render the document and ask
// nothing of any origin but the server's own (no CDN script, font or logo).
//
//   node docs.mjs BASE_URL ARTIFACT_DIR
//
// For each page it reports {step: "page", path, requests, foreign, failed}: every URL the
// page asked for, those of another origin, and those that failed or were answered 4xx/5xx.
import path from 'node:path';
import { launch, report, watch } from './lib.mjs';

const [base, dir] = process.argv.slice(2);
if (!base || !dir) {
  console.error('usage: node docs.mjs BASE_URL ARTIFACT_DIR');
  process.exit(2);
}
const origin = new URL(base).origin;

// Same-origin, or made by the page itself (ReDoc's search runs in a blob: worker).
const own = (url) => url.startsWith('data:') || url.startsWith('blob:' + origin) || new URL(url).origin === origin;

const browser = await launch();
let page;
try {
  const context = await browser.newContext({viewport: {width: 1280, height: 900}});
  for (const [route, rendered] of [
    // ReDoc shows an operation's summary as its heading and its examples on the right.
    ['/redoc', () => page.getByRole('heading', {name: 'Create an agent'}).first().waitFor({timeout: 60_000})],
    ['/docs', () => page.locator('.opblock-summary-description', {hasText: 'Create an agent'}).first().waitFor({timeout: 60_000})],
  ]) {
    page = await context.newPage();
    watch(page, route);
    const requests = [];
    const failed = [];
    page.on('request', (r) => requests.push(r.url()));
    page.on('requestfailed', (r) => failed.push(r.url() + ' ' + (r.failure() && r.failure().errorText)));
    page.on('response', (r) => { if (r.status() >= 400) failed.push(r.url() + ' ' + r.status()); });
    await page.goto(base + route);
    await rendered();
    // What the page loads once it has rendered (the icon, ReDoc's worker) is counted too.
    // A busy machine may keep ReDoc's worker busy past the wait: what was asked until then
    // is still every request the page made to render, and is checked all the same.
    await page.waitForLoadState('networkidle', {timeout: 30_000}).catch(() => {});
    // One screen, at the agent's create (the whole reference is tens of thousands of pixels).
    if (route === '/redoc') await page.getByRole('heading', {name: 'Create an agent'}).first().scrollIntoViewIfNeeded();
    const file = path.join(dir, 'docs' + route.replace('/', '-') + '.png');
    await page.screenshot({path: file});
    report('screenshot', {file});
    report('page', {path: route, requests, foreign: requests.filter((u) => !own(u)), failed});
    await page.close();
  }
} catch (e) {
  if (page) await page.screenshot({path: path.join(dir, 'failure-docs.png')}).catch(() => {});
  console.error(e && e.stack || String(e));
  process.exitCode = 1;
} finally {
  await browser.close();
}
