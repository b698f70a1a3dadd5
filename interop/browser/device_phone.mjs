#!/usr/bin/env node
// Drives cloudsign's phone page (/device, docs/device-protocol.md "Devices") in headless
// Chromium the way a signer on a phone would: enters the pairing code, confirms, stays
// connected, shows each signature request and taps Sign or Decline when told to.
//
// Inputs (environment only: the pairing code is a secret, argv is visible in ps):
//   CS_DEVICE_URL     the phone page, e.g. http://127.0.0.1:8080/device
//   CS_PAIRING_CODE   the code from `cloudsign admin device pair`
//   CS_SCREENSHOTS    a folder; PNGs are written there (and failure.png on failure)
//   CHROMIUM          browser binary, default /usr/bin/chromium
//   CS_STEP_TIMEOUT_MS  per-step timeout, default 20000
//
// Conversation: one JSON object per line. Right after start the driver pairs and prints
//   {"event":"paired", "user", "aud", "deviceId", "credentialId", "transport", "keys", "problems"}
// ("keys": what the stored CryptoKeys report; "problems": console errors, page errors and CSP
// violations seen so far). Then it reads commands from stdin, one per line, and answers each
// with one line:
//   {"cmd":"request","screenshot":NAME}  waits for a request on screen, writes NAME.png, prints
//       {"event":"request","title","application","label","count","code","requestId"}
//   {"cmd":"sign"} / {"cmd":"decline"}   taps the button, waits for the service's ack:
//       {"event":"answered","ack":"signed:accepted" | "declined:accepted" | …}
//   {"cmd":"open","query":"?transport=poll"}  reloads the page with that query (same browser
//       profile, so the same keys), waits until it is connected: {"event":"online","transport"}
//   {"cmd":"probe"}                      bad input on /device/v1/connect from the page's origin:
//       {"event":"probe", NAME: {"seen": [frame types], "code": close code}, …, "consoleErrors":
//       [the browser's console errors about refused /device/v1/connect handshakes meanwhile,
//       which are the probe's doing and so not among the page's "problems"]}
//   {"cmd":"status"}                     {"event":"status","transport","sockets":{"opened","closed"},"problems"}
//   {"cmd":"quit"}                       closes the browser, prints {"event":"bye","problems"}
// On failure: a message on stderr and exit status 1. The pairing code is never printed.
//
// Setup: apt-get install chromium; in this folder:
//   PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { chromium } from 'playwright-core';

const env = process.env;
const STEP_MS = Number(env.CS_STEP_TIMEOUT_MS) > 0 ? Number(env.CS_STEP_TIMEOUT_MS) : 20000;

class FlowError extends Error {}
const fail = (msg) => {
  throw new FlowError(msg);
};

function required(name) {
  const v = env[name];
  if (v === undefined || v === '') fail(`environment variable ${name} is required`);
  return v;
}

const code = env.CS_PAIRING_CODE || '';
const redact = (text) => (code ? String(text).split(code).join('***') : String(text));
const say = (obj) => process.stdout.write(`${JSON.stringify(obj)}\n`);

let stage = 'setup';
let browser = null;
let page = null;
let shots = '.';
const problems = [];
// While the probe runs: the console errors it provokes on purpose (Chromium logs a refused
// WebSocket handshake, the upgrade without the subprotocol, as a console error). They are the
// probe's, not the page's: reported with the probe, never among the page's problems.
let probing = null;
const PROBE_NOISE = /^WebSocket connection to '[^']*\/device\/v1\/connect' failed: /;
// The page's WebSockets, as the browser saw them: a connection that stays up is opened once.
const sockets = { opened: 0, closed: 0 };

async function pageSummary() {
  if (!page) return '';
  try {
    const text = await page.evaluate(() => (document.body ? document.body.innerText : ''));
    return `\n  page URL: ${page.url()}\n  page text: ${text.replace(/\s+/g, ' ').trim().slice(0, 600)}`;
  } catch {
    return '';
  }
}

// What the page stored in IndexedDB (lib.js: database cloudsign-device, store state, key
// device): the CryptoKeys as the browser keeps them, and whether the private keys export.
async function keyReport() {
  return page.evaluate(async () => {
    const db = await new Promise((resolve, reject) => {
      const r = indexedDB.open('cloudsign-device', 1);
      r.onsuccess = () => resolve(r.result);
      r.onerror = () => reject(r.error);
    });
    const state = await new Promise((resolve, reject) => {
      const g = db.transaction('state', 'readonly').objectStore('state').get('device');
      g.onsuccess = () => resolve(g.result);
      g.onerror = () => reject(g.error);
    });
    db.close();
    const describe = async (k) => {
      let exported = 'exported';
      try {
        await crypto.subtle.exportKey('pkcs8', k);
      } catch (e) {
        exported = e.name;
      }
      return {
        isCryptoKey: k instanceof CryptoKey,
        type: k.type,
        extractable: k.extractable,
        algorithm: k.algorithm.name,
        namedCurve: k.algorithm.namedCurve,
        usages: [...k.usages],
        pkcs8Export: exported,
      };
    };
    return {
      deviceKey: await describe(state.deviceKey.privateKey),
      signingKey: await describe(state.signingKey.privateKey),
    };
  });
}

async function waitOnline() {
  await page.waitForSelector('body[data-connection=online]', { timeout: STEP_MS });
  return (await page.textContent('#home-transport')).trim();
}

async function pair(url) {
  stage = 'open the page';
  await page.goto(url, { waitUntil: 'load' });
  await page.waitForSelector('#view-pair:not([hidden])');
  stage = 'enter the code';
  await page.fill('#pair-code', code);
  await page.fill('#device-name', 'Test phone');
  await page.screenshot({ path: join(shots, 'pair.png'), fullPage: true });
  await page.click('#pair-start');
  await page.waitForSelector('#view-pair-confirm:not([hidden])');
  const user = (await page.textContent('#pair-user')).trim();
  const aud = (await page.textContent('#pair-aud')).trim();
  await page.screenshot({ path: join(shots, 'pair-confirm.png'), fullPage: true });
  stage = 'confirm the pairing';
  await page.click('#pair-confirm');
  await page.waitForSelector('#view-home:not([hidden])');
  stage = 'connect';
  const transport = await waitOnline();
  const [deviceText, credentialId] = await Promise.all([page.textContent('#home-device'), page.textContent('#home-credential')]);
  const deviceId = /\((dev_[^)]+)\)/.exec(deviceText)?.[1] ?? null;
  await page.screenshot({ path: join(shots, 'paired.png'), fullPage: true });
  say({ event: 'paired', user, aud, deviceId, credentialId: credentialId.trim(), transport, keys: await keyReport(), problems });
}

async function request(name) {
  stage = 'wait for a request';
  await page.waitForSelector('#request:not([hidden])', { timeout: STEP_MS * 3 });
  const text = async (id) => (await page.textContent(id)).trim();
  const shown = {
    title: await text('#req-title'),
    application: await text('#req-application'),
    label: await text('#req-label'),
    count: await text('#req-count'),
    code: await text('#req-code'),
    requestId: await page.getAttribute('#request', 'data-request-id'),
  };
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
  say({ event: 'request', ...shown });
}

async function answer(button) {
  stage = `tap ${button}`;
  await page.evaluate(() => {
    delete document.body.dataset.lastAck;
  });
  await page.click(`#${button}`);
  await page.waitForFunction(() => document.body.dataset.lastAck, null, { timeout: STEP_MS });
  const ack = await page.evaluate(() => document.body.dataset.lastAck);
  await page.screenshot({ path: join(shots, `${button}-done.png`), fullPage: true });
  say({ event: 'answered', ack });
}

// Bad input on /device/v1/connect, from this page's origin, with the browser's own WebSocket:
// for each probe, the frames the service sent (their types) and the close code it chose.
async function probe() {
  return page.evaluate(async () => {
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/device/v1/connect`;
    const run = (protocols, send) =>
      new Promise((resolve) => {
        const seen = [];
        let ws;
        try {
          ws = protocols ? new WebSocket(url, protocols) : new WebSocket(url);
        } catch (e) {
          resolve({ thrown: e.name });
          return;
        }
        const timer = setTimeout(() => resolve({ seen, code: 'timeout' }), 10000);
        ws.onmessage = (ev) => {
          let type = 'unparsable';
          try {
            const m = JSON.parse(ev.data);
            type = m.type === 'error' ? `error:${m.error}` : m.type;
          } catch {
            // kept as unparsable
          }
          seen.push(type);
          if (seen.length === 1) send(ws);
        };
        ws.onclose = (ev) => {
          clearTimeout(timer);
          resolve({ seen, code: ev.code, protocol: ws.protocol });
        };
      });
    const header = btoa(JSON.stringify({ alg: 'ES256', typ: 'cloudsign-device+jws', kid: 'dev_nosuchdevice' }))
      .replace(/=+$/, '')
      .replace(/\+/g, '-')
      .replace(/\//g, '_');
    return {
      garbage: await run('cloudsign-device.v1', (ws) => ws.send('not a JWS')),
      unknownDevice: await run('cloudsign-device.v1', (ws) => ws.send(`${header}.e30.${'A'.repeat(86)}`)),
      binary: await run('cloudsign-device.v1', (ws) => ws.send(new Uint8Array([1, 2, 3]))),
      tooBig: await run('cloudsign-device.v1', (ws) => ws.send('x'.repeat(600 * 1024))),
      noSubprotocol: await run(null, () => {}),
    };
  });
}

async function main() {
  const url = required('CS_DEVICE_URL');
  required('CS_PAIRING_CODE');
  shots = required('CS_SCREENSHOTS');
  mkdirSync(shots, { recursive: true });

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
  page = await context.newPage();
  // What the page must never do: fail a script, break its CSP, log an error.
  page.on('pageerror', (e) => problems.push(`pageerror: ${redact(e.message)}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = redact(m.text());
    if (probing && PROBE_NOISE.test(text)) probing.push(text);
    else problems.push(`console: ${text}`);
  });
  page.on('websocket', (ws) => {
    sockets.opened += 1;
    ws.on('close', () => {
      sockets.closed += 1;
    });
  });

  await pair(url);

  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) {
    if (!line.trim()) continue;
    let c;
    try {
      c = JSON.parse(line);
    } catch {
      fail(`not a JSON command: ${line}`);
    }
    switch (c.cmd) {
      case 'request':
        await request(String(c.screenshot || 'request'));
        break;
      case 'sign':
      case 'decline':
        await answer(c.cmd);
        break;
      case 'open': {
        stage = 'reopen the page';
        const u = new URL(url);
        u.search = String(c.query || '');
        await page.goto(u.href, { waitUntil: 'load' });
        await page.waitForSelector('#view-home:not([hidden])');
        say({ event: 'online', transport: await waitOnline() });
        break;
      }
      case 'probe': {
        stage = 'probe /device/v1/connect';
        probing = [];
        try {
          const seen = await probe();
          // The refused handshake's console message may reach us after the evaluation's result.
          for (let i = 0; i < 50 && probing.length === 0; i++) await new Promise((r) => setTimeout(r, 100));
          say({ event: 'probe', ...seen, consoleErrors: probing });
        } finally {
          probing = null;
        }
        break;
      }
      case 'status':
        say({ event: 'status', transport: (await page.textContent('#home-transport')).trim(), sockets, problems });
        break;
      case 'quit':
        await browser.close();
        browser = null;
        say({ event: 'bye', problems });
        return;
      default:
        fail(`unknown command ${c.cmd}`);
    }
  }
  fail('stdin closed before quit');
}

main().then(
  () => process.exit(0),
  async (e) => {
    const what = e instanceof FlowError ? e.message : `${e && e.stack ? e.stack : e}`;
    const summary = await pageSummary();
    try {
      if (page) await page.screenshot({ path: join(shots, 'failure.png'), fullPage: true });
    } catch {
      // best effort
    }
    process.stderr.write(redact(`device_phone.mjs: ${stage}: ${what}${summary}\n  problems: ${JSON.stringify(problems)}\n`));
    if (browser) await browser.close().catch(() => {});
    process.exit(1);
  },
);
