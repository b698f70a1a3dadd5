#!/usr/bin/env node
// The signer's browser for `cloudsign sign --client-id ...` (crates/cli/tests/cli_oauth.rs):
// opens the authorization URL the CLI printed, logs in, consents (with the PIN when the page
// asks for it) and lets the browser follow the server's redirect to the CLI's loopback
// listener for real — unlike consent.mjs, nothing is intercepted: the CLI must receive the
// code itself. Succeeds once the browser shows the listener's "Signed in" page.
//
// Inputs (environment only: they carry secrets, argv is visible in ps):
//   CS_AUTHORIZE_URL  the URL from the CLI's `authorize-url: ` line
//   CS_USER, CS_PASSWORD, CS_PIN (optional)
//   CS_SCREENSHOTS    path prefix: PREFIX-consent.png, PREFIX-done.png (PREFIX-failure.png)
//   CHROMIUM          browser binary, default /usr/bin/chromium
//   CS_STEP_TIMEOUT_MS  per-step timeout, default 20000
//
// Output: one line of JSON on stdout: {"final": URL, "consentText": STRING, "doneText": STRING}.
// On failure: a message on stderr and exit status 1. Secrets are never printed.

import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { chromium } from 'playwright-core';

const env = process.env;
const STEP_MS = Number(env.CS_STEP_TIMEOUT_MS) > 0 ? Number(env.CS_STEP_TIMEOUT_MS) : 20000;
const SECRETS = [env.CS_PASSWORD, env.CS_PIN].filter((s) => s && s.length > 0);
const redact = (text) => SECRETS.reduce((out, s) => out.split(s).join('***'), String(text));

const watchdog = setTimeout(() => {
  process.stderr.write(`cli_consent.mjs: gave up after ${(6 * STEP_MS) / 1000} s overall\n`);
  process.exit(1);
}, 6 * STEP_MS);
watchdog.unref();

function required(name) {
  const v = env[name];
  if (v === undefined || v === '') throw new Error(`environment variable ${name} is required`);
  return v;
}

let browser = null;
let page = null;
let stage = 'setup';

async function main() {
  const authorizeUrl = required('CS_AUTHORIZE_URL');
  const user = required('CS_USER');
  const password = required('CS_PASSWORD');
  const shots = required('CS_SCREENSHOTS');
  mkdirSync(dirname(shots), { recursive: true });

  stage = 'launch';
  browser = await chromium.launch({
    executablePath: env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox'],
    timeout: STEP_MS,
  });
  const context = await browser.newContext({ locale: 'en-US' });
  context.setDefaultTimeout(STEP_MS);
  context.setDefaultNavigationTimeout(STEP_MS);
  page = await context.newPage();

  stage = 'login';
  await page.goto(authorizeUrl, { waitUntil: 'load' });
  const login = page.locator('form:has(input[name=password])');
  await login.waitFor({ state: 'visible' });
  await login.locator('input[name=username]').fill(user);
  await login.locator('input[name=password]').fill(password);
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), login.locator('#login').click()]);

  stage = 'consent';
  const consent = page.locator('form:has(button[name=decision])');
  await consent.waitFor({ state: 'visible' });
  const consentText = await page.evaluate(() => (document.querySelector('main') || document.body).innerText);
  await page.screenshot({ path: `${shots}-consent.png`, fullPage: true });
  const pin = consent.locator('input[name=pin]');
  if ((await pin.count()) > 0) {
    if (!env.CS_PIN) throw new Error('the consent page asks for the PIN but CS_PIN is not set');
    await pin.fill(env.CS_PIN);
  }

  // The server redirects (303) to http://127.0.0.1:PORT/...: the CLI's listener answers.
  stage = 'redirect';
  await Promise.all([
    page.waitForURL((url) => url.hostname === '127.0.0.1' && !url.pathname.startsWith('/oauth2/'), { waitUntil: 'load' }),
    consent.locator('button[name=decision][value=approve]').click(),
  ]);
  const doneText = await page.evaluate(() => document.body.innerText);
  await page.screenshot({ path: `${shots}-done.png`, fullPage: true });
  return { final: page.url(), consentText, doneText };
}

let code = 0;
try {
  process.stdout.write(JSON.stringify(await main()) + '\n');
} catch (e) {
  code = 1;
  // eslint-disable-next-line no-control-regex
  const msg = (e && e.message ? e.message : String(e)).replace(/\x1b\[[0-9;]*m/g, '');
  let where = '';
  try {
    where = `\n  page URL: ${page.url()}\n  page text: ${(await page.evaluate(() => document.body.innerText)).slice(0, 600)}`;
  } catch {
    // best effort
  }
  process.stderr.write(redact(`cli_consent.mjs: ${stage}: ${msg}${where}\n`));
  if (page && env.CS_SCREENSHOTS) await page.screenshot({ path: `${env.CS_SCREENSHOTS}-failure.png`, timeout: 5000 }).catch(() => {});
} finally {
  if (browser) await browser.close().catch(() => {});
}
process.exit(code);
