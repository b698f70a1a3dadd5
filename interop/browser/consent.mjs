#!/usr/bin/env node
// Drives cloudsign's OAuth 2.0 login + consent pages in headless Chromium,
// the way a person on a phone would, and reports where the browser was
// finally redirected.
//
// Inputs (environment only: they carry secrets, argv is visible in ps):
//   CS_AUTHORIZE_URL  full URL of /oauth2/authorize?... to open first
//   CS_REDIRECT_URI   the client's registered redirect URI; nothing needs to
//                     listen there: the browser's way there is only watched
//   CS_USER, CS_PASSWORD
//   CS_PIN, CS_OTP    optional; filled on the consent page when it has
//                     input[name=pin] / input[name=otp]
//   CS_DECISION       "approve" (default) or "deny"
//   CS_SCREENSHOTS    path prefix: writes PREFIX-login.png, PREFIX-consent.png
//                     and, on failure, PREFIX-failure.png
//   CHROMIUM          browser binary, default /usr/bin/chromium
//   CS_STEP_TIMEOUT_MS  per-step timeout, default 20000
//
// Output: exactly one line of JSON on stdout,
//   {"redirect": URL, "loginTitle": STRING|null, "consentText": STRING|null}
// (null for a page that was never shown, e.g. when the server redirects to the
// client straight away with an error). On failure: a message on stderr and
// exit status 1. The password, PIN and OTP are never printed.
//
// Setup: apt-get install chromium; in this folder:
//   PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

const env = process.env;
const STEP_MS = Number(env.CS_STEP_TIMEOUT_MS) > 0 ? Number(env.CS_STEP_TIMEOUT_MS) : 20000;
const SECRETS = [env.CS_PASSWORD, env.CS_PIN, env.CS_OTP].filter((s) => s && s.length > 0);

function redact(text) {
  let out = String(text);
  for (const s of SECRETS) out = out.split(s).join('***');
  return out;
}

class FlowError extends Error {}
const fail = (msg) => {
  throw new FlowError(msg);
};

let stage = 'setup';
let browser = null;
let page = null;

// Last resort against a hung browser: CI must never wait forever.
const watchdog = setTimeout(() => {
  process.stderr.write(`consent.mjs: ${stage}: gave up after ${(8 * STEP_MS) / 1000} s overall\n`);
  process.exit(1);
}, 8 * STEP_MS);
watchdog.unref();

function required(name) {
  const v = env[name];
  if (v === undefined || v === '') fail(`environment variable ${name} is required`);
  return v;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// page.evaluate and friends take no timeout and can wait for as long as a
// navigation hangs: bound them.
function bounded(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new FlowError(`${what}: no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function screenshot(path) {
  await page.screenshot({ path, fullPage: true, timeout: STEP_MS });
}

// What the browser shows now: 'redirect' once the redirect URI was requested,
// else 'login' / 'consent' when the page has that form, else null.
async function currentStage(redirected) {
  if (redirected()) return 'redirect';
  try {
    if ((await bounded(page.locator('button[name=decision]').count(), 2000, 'count')) > 0) return 'consent';
    if ((await bounded(page.locator('input[name=password]').count(), 2000, 'count')) > 0) return 'login';
  } catch {
    // The document went away mid-query (navigation in progress): look again.
  }
  return null;
}

// Waits until the page settles on one of the wanted stages; fails on timeout
// or when it settles (load event done) on something else.
async function waitForStage(wanted, redirected, what) {
  const deadline = Date.now() + STEP_MS;
  let settledOn = null;
  while (Date.now() < deadline) {
    const s = await currentStage(redirected);
    if (s && wanted.includes(s)) return s;
    const loaded = await bounded(
      page.evaluate(() => document.readyState === 'complete'),
      2000,
      'readyState',
    ).catch(() => false);
    if (loaded) {
      // A fully loaded page that is not what we wait for: allow a short grace
      // period for script-driven redirects, then call it unexpected.
      if (settledOn === null) settledOn = Date.now();
      if (Date.now() - settledOn > 1500) {
        const s2 = await currentStage(redirected);
        if (s2 && wanted.includes(s2)) return s2;
        fail(`expected ${what}, but the browser shows ${s2 ? `the ${s2} page` : 'an unexpected page'}`);
      }
    } else {
      settledOn = null;
    }
    await sleep(100);
  }
  fail(`timed out after ${STEP_MS / 1000} s waiting for ${what}`);
}

// Clicks a submit button and waits until the main frame has committed the
// resulting navigation, so the next step never looks at the old document.
// A failed navigation (to the redirect URI, where nothing listens) may
// commit no document at all: having seen the redirect is enough.
async function clickAndWaitForNavigation(locator, what, redirected) {
  let navigated = false;
  const onNavigated = (frame) => {
    if (frame === page.mainFrame()) navigated = true;
  };
  page.on('framenavigated', onNavigated);
  try {
    await locator.click().catch((e) => {
      if (!redirected()) throw e;
    });
    const deadline = Date.now() + STEP_MS;
    while (!navigated && !redirected()) {
      if (Date.now() > deadline) fail(`no page load within ${STEP_MS / 1000} s after ${what}`);
      await sleep(50);
    }
  } finally {
    page.off('framenavigated', onNavigated);
  }
}

async function pageSummary() {
  if (!page) return '';
  let url = '';
  let text = '';
  try {
    url = page.url();
    text = await bounded(
      page.evaluate(() => (document.body ? document.body.innerText : '')),
      3000,
      'page text',
    );
  } catch {
    // ignore: best effort only
  }
  text = text.replace(/\s+/g, ' ').trim().slice(0, 600);
  return `\n  page URL: ${url}\n  page text: ${text}`;
}

async function main() {
  const authorizeUrl = required('CS_AUTHORIZE_URL');
  const redirectUri = required('CS_REDIRECT_URI');
  const user = required('CS_USER');
  const password = required('CS_PASSWORD');
  const shots = required('CS_SCREENSHOTS');
  const decision = (env.CS_DECISION || 'approve').toLowerCase();
  if (decision !== 'approve' && decision !== 'deny') {
    fail(`CS_DECISION must be "approve" or "deny", not "${env.CS_DECISION}"`);
  }
  let redirectNorm;
  try {
    redirectNorm = new URL(redirectUri).href;
  } catch {
    fail(`CS_REDIRECT_URI is not a URL: ${redirectUri}`);
  }
  const isRedirect = (href) => href.startsWith(redirectUri) || href.startsWith(redirectNorm);
  mkdirSync(dirname(shots), { recursive: true });

  stage = 'launch';
  browser = await chromium.launch({
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'],
    timeout: STEP_MS,
  });
  const context = await browser.newContext({
    viewport: { width: 390, height: 844 },
    deviceScaleFactor: 2,
    isMobile: true,
    hasTouch: true,
    locale: 'en-US',
  });
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);

  // Nothing listens at the redirect URI, so the browser's visit there is
  // only watched, never completed:
  // - The server's 302/303 to it: Playwright does not route requests that a
  //   redirect made (its docs say so; microsoft/playwright#12527), so the URL
  //   is taken from the redirect response's Location header (which, unlike
  //   the request URL, keeps a #fragment) or, failing that, from the
  //   'request' event. The browser then shows its own error page
  //   (ERR_CONNECTION_REFUSED, or ERR_UNSAFE_PORT for ports such as 9): fine.
  // - A direct navigation (link, form post, script): routed and answered
  //   with a 200 "done".
  let redirect = null;
  const redirected = () => redirect !== null;
  const capture = (url) => {
    // First one wins, but a later sighting of the same URL plus a #fragment
    // (the Location header, after the 'request' event) refines it.
    if (redirect === null || (url.startsWith(redirect) && url.length > redirect.length)) redirect = url;
  };
  await context.route(
    (url) => isRedirect(url.href),
    async (route) => {
      capture(route.request().url());
      await route.fulfill({ status: 200, contentType: 'text/plain', body: 'done' });
    },
  );
  page = await context.newPage();
  page.on('response', (resp) => {
    const status = resp.status();
    if (status < 300 || status > 399 || !resp.request().isNavigationRequest()) return;
    const location = resp.headers()['location'];
    if (!location) return;
    let target;
    try {
      target = new URL(location, resp.url()).href;
    } catch {
      return;
    }
    if (isRedirect(target)) capture(target);
  });
  page.on('request', (req) => {
    if (req.isNavigationRequest() && isRedirect(req.url())) capture(req.url());
  });

  let loginTitle = null;
  let consentText = null;

  stage = 'authorize';
  // The server may send the browser straight on to the client (an error
  // redirect): that navigation fails here, since nothing listens there.
  await page.goto(authorizeUrl, { waitUntil: 'commit' }).catch((e) => {
    if (!redirected()) throw e;
  });

  let s = await waitForStage(['login', 'consent', 'redirect'], redirected, 'the login page');
  if (s === 'consent') fail('the consent page came before any login');

  if (s === 'login') {
    stage = 'login';
    const form = page.locator('form:has(input[name=password])');
    for (const sel of ['input[name=username]', 'input[name=password]', 'input[name=csrf]', '#login']) {
      if ((await form.locator(sel).count()) !== 1) fail(`login form: expected one ${sel}, found ${await form.locator(sel).count()}`);
    }
    if ((await form.locator('input[name=csrf]').getAttribute('type')) !== 'hidden') fail('login form: csrf input is not hidden');
    if (!(await form.locator('input[name=csrf]').inputValue())) fail('login form: csrf input is empty');
    loginTitle = await page.title();
    await screenshot(`${shots}-login.png`);
    await form.locator('input[name=username]').fill(user);
    await form.locator('input[name=password]').fill(password);
    await clickAndWaitForNavigation(form.locator('#login'), 'clicking #login', redirected);

    s = await waitForStage(['consent', 'redirect'], redirected, 'the consent page');
  }

  if (s === 'consent') {
    stage = 'consent';
    const form = page.locator('form:has(button[name=decision])');
    if ((await form.count()) !== 1) fail(`consent: expected one form with decision buttons, found ${await form.count()}`);
    for (const sel of ['input[name=csrf]', 'button[name=decision][value=approve]', 'button[name=decision][value=deny]']) {
      if ((await form.locator(sel).count()) !== 1) fail(`consent form: expected one ${sel}, found ${await form.locator(sel).count()}`);
    }
    if ((await form.locator('input[name=csrf]').getAttribute('type')) !== 'hidden') fail('consent form: csrf input is not hidden');
    if (!(await form.locator('input[name=csrf]').inputValue())) fail('consent form: csrf input is empty');
    consentText = await bounded(
      page.evaluate(() => (document.querySelector('main') || document.body).innerText),
      STEP_MS,
      'reading the consent page text',
    );
    await screenshot(`${shots}-consent.png`);
    for (const [name, value] of [['pin', env.CS_PIN], ['otp', env.CS_OTP]]) {
      const input = form.locator(`input[name=${name}]`);
      const present = (await input.count()) > 0;
      if (value && present) await input.fill(value);
      else if (value && !present) process.stderr.write(`consent.mjs: note: CS_${name.toUpperCase()} given but the consent page has no ${name} input\n`);
      else if (!value && present && decision === 'approve') process.stderr.write(`consent.mjs: note: the consent page asks for ${name} but CS_${name.toUpperCase()} is not set\n`);
    }
    await clickAndWaitForNavigation(form.locator(`button[name=decision][value=${decision}]`), `clicking "${decision}"`, redirected);

    s = await waitForStage(['redirect'], redirected, `the redirect to ${redirectUri} after "${decision}"`);
  }

  stage = 'redirect';
  return { redirect, loginTitle, consentText };
}

let code = 0;
try {
  const result = await main();
  process.stdout.write(JSON.stringify(result) + '\n');
} catch (e) {
  code = 1;
  // Playwright's messages carry a call log, which is enough: no stack trace.
  // eslint-disable-next-line no-control-regex
  const msg = (e && e.message ? e.message : String(e)).replace(/\x1b\[[0-9;]*m/g, '');
  process.stderr.write(redact(`consent.mjs: ${stage}: ${msg}${await pageSummary()}\n`));
  if (page && env.CS_SCREENSHOTS) {
    try {
      await page.screenshot({ path: `${env.CS_SCREENSHOTS}-failure.png`, fullPage: true, timeout: 5000 });
      process.stderr.write(`consent.mjs: saved ${env.CS_SCREENSHOTS}-failure.png\n`);
    } catch {
      // best effort
    }
  }
} finally {
  if (browser) await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
}
process.exit(code);
