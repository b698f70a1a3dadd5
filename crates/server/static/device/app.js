// The phone page (docs/device-protocol.md "Devices", scenario [3]): pairs this browser with the
// service, then, while the page is open, receives requests and answers them after the signer
// decides. The protocol's pure parts are in lib.js; this file is the screen and the transport.
// Texts from the service are only ever set with textContent (never as HTML).

import * as P from './lib.js';

const $ = (id) => document.getElementById(id);
const AGENT = 'cloudsign-phone-page/0.1';
const nowSeconds = () => Math.floor(Date.now() / 1000);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// Reconnection (doc "Transport"): 1 s doubling to 60 s, ±20 % jitter.
const jitter = (ms) => ms * (0.8 + 0.4 * Math.random());

let state = null; // the stored record (lib.js loadState)
let pairing = null; // { challenge: pairChallenge, name } between pair/start and pair/finish
let transport = null;
const requests = new Map(); // requestId → { m, checked }, in arrival order: the first is shown
const done = new Set(); // requestIds answered or dropped here: a re-delivery is not shown again
const outbox = new Map(); // requestId → { payload, label, what, tries }: answers awaiting their ack

// ---- screen -------------------------------------------------------------------------------------

function show(view) {
  for (const v of ['view-unsupported', 'view-pair', 'view-pair-confirm', 'view-home']) $(v).hidden = v !== view;
}

function status(text, kind = '') {
  const s = $('status');
  s.textContent = text;
  s.className = `status ${kind}`;
  s.hidden = text === '';
}

function result(text, kind = '') {
  const r = $('result');
  r.textContent = text;
  r.className = kind;
  r.hidden = text === '';
}

function connection(stateName, text) {
  document.body.dataset.connection = stateName;
  $('home-transport').textContent = text;
}

function errorText(body, fallback) {
  const t = body && (body.errorDescription || body.error_description || body.error);
  return typeof t === 'string' && P.displayTextOk(t, 500) ? t : fallback;
}

async function post(path, body, contentType) {
  const r = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': contentType },
    body,
    credentials: 'omit',
    cache: 'no-store',
    referrerPolicy: 'no-referrer',
  });
  let json = null;
  try {
    json = await r.json();
  } catch {
    json = null;
  }
  return { status: r.status, body: json };
}

// ---- start --------------------------------------------------------------------------------------

// The code from `#pair=CODE` (doc "The pairing code": the fragment is never sent to the server),
// then removed from the address bar and the history entry.
function fragmentCode() {
  const m = /^#pair=([0-9A-Za-z -]{1,40})$/.exec(decodeURIComponent(location.hash || ''));
  if (location.hash) history.replaceState(null, '', location.pathname + location.search);
  return m ? m[1] : '';
}

function defaultName() {
  const ua = navigator.userAgent;
  if (/iPhone/.test(ua)) return 'iPhone';
  if (/iPad/.test(ua)) return 'iPad';
  if (/Android/.test(ua)) return 'Android phone';
  return 'Browser';
}

async function main() {
  if (!window.isSecureContext || !window.crypto || !crypto.subtle || !window.indexedDB) {
    show('view-unsupported');
    status('');
    return;
  }
  const code = fragmentCode();
  try {
    state = (await P.loadState()) ?? null;
  } catch {
    state = null;
  }
  if (state && !code) {
    home();
    connect();
    return;
  }
  showPair(code, state ? `This phone is already paired for ${state.user}; pairing again replaces those keys here.` : '');
}

function showPair(code, note) {
  $('pair-code').value = code;
  if (!$('device-name').value) $('device-name').value = defaultName();
  show('view-pair');
  status(note);
  (code ? $('pair-start') : $('pair-code')).focus();
}

function home() {
  $('home-user').textContent = state.user;
  $('home-aud').textContent = state.aud;
  $('home-device').textContent = `${state.name} (${state.deviceId})`;
  $('home-credential').textContent = state.credentialId;
  show('view-home');
  status('');
  render();
}

// ---- pairing (doc "Pairing") ----------------------------------------------------------------------

$('pair-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const code = $('pair-code').value.trim();
  const name = $('device-name').value.trim();
  if (!name || !P.displayTextOk(name, P.MAX_NAME_CHARS)) {
    status('Give this phone a name of at most 64 characters.', 'error');
    return;
  }
  $('pair-start').disabled = true;
  status('Checking the code…');
  try {
    const r = await post('/device/v1/pair/start', JSON.stringify({ v: 1, pairingCode: code }), 'application/json');
    // The code is spent at pair/start, whatever happens next: no reason to keep it on screen.
    $('pair-code').value = '';
    const c = r.body;
    if (r.status !== 200 || !c || c.type !== 'pairChallenge' || c.v !== 1) {
      status(errorText(c, 'The pairing code was not accepted. Ask for a new one.'), 'error');
      return;
    }
    if (!P.displayTextOk(c.user, P.MAX_TEXT_CHARS) || !P.displayTextOk(c.aud, P.MAX_TEXT_CHARS) || !P.b64uDecode(c.challenge)) {
      status('The service sent a pairing challenge this page cannot read.', 'error');
      return;
    }
    pairing = { challenge: c, name };
    $('pair-user').textContent = c.user;
    $('pair-user-2').textContent = c.user;
    $('pair-aud').textContent = c.aud;
    $('pair-name').textContent = name;
    show('view-pair-confirm');
    status('');
    $('pair-confirm').disabled = false;
  } catch {
    status('The service cannot be reached. Check the connection and try again.', 'error');
  } finally {
    $('pair-start').disabled = false;
  }
});

$('pair-cancel').addEventListener('click', () => {
  pairing = null;
  showPair('', 'Pairing cancelled. The code was used: ask for a new one to pair.');
});

$('pair-confirm').addEventListener('click', async () => {
  if (!pairing) return;
  $('pair-confirm').disabled = true;
  const { challenge: c, name } = pairing;
  status('Making this phone’s keys…');
  try {
    // Two keys (doc "Keys"): the device key signs protocol messages, the signing key only the
    // documents the signer approves.
    const deviceKey = await P.newKeyPair();
    const signingKey = await P.newKeyPair();
    const csr = await P.buildCsr(signingKey, c.challenge, name);
    const payload = {
      type: 'pair',
      v: 1,
      aud: c.aud,
      pairingId: c.pairingId,
      challenge: c.challenge,
      deviceKey: P.b64uEncode(await P.spkiOf(deviceKey)),
      name,
      kind: 'phone',
      prehashed: false,
      csr: P.b64uEncode(csr),
    };
    const jws = await P.signJws(deviceKey.privateKey, c.pairingId, payload);
    status('Pairing…');
    const r = await post('/device/v1/pair/finish', jws, 'application/jose');
    const p = r.body;
    if (r.status !== 200 || !p || p.type !== 'paired' || p.v !== 1) {
      pairing = null;
      showPair('', errorText(p, 'Pairing was refused. Ask for a new code and try again.'));
      $('status').className = 'status error';
      return;
    }
    if (transport) transport.stop();
    state = {
      deviceKey,
      signingKey,
      deviceId: p.deviceId,
      credentialId: p.credentialId,
      certificates: p.certificates,
      aud: c.aud,
      user: c.user,
      name,
      counter: 0,
      serviceCounter: Number.isSafeInteger(p.counter) ? p.counter : 0,
      pairedAt: nowSeconds(),
    };
    await P.saveState(state);
    pairing = null;
    home();
    result(`Paired: this phone now signs for ${state.user}.`, 'lead');
    connect();
  } catch {
    pairing = null;
    showPair('', 'Pairing failed: the service cannot be reached or this browser refused to make the keys.');
    $('status').className = 'status error';
  }
});

$('forget').addEventListener('click', async () => {
  if (transport) transport.stop();
  transport = null;
  await P.clearState();
  state = null;
  requests.clear();
  showPair('', 'The keys were deleted from this phone.');
});

// ---- requests (doc "Signing", "Approval") --------------------------------------------------------

async function handle(m) {
  if (!m || typeof m !== 'object' || m.v !== 1) return; // another version: not ours to read
  if (Number.isSafeInteger(m.counter)) await P.noteServiceCounter(m.counter);
  switch (m.type) {
    case 'signRequest':
    case 'approvalRequest':
      await onRequest(m);
      break;
    case 'cancel':
      if (requests.delete(m.requestId)) {
        done.add(m.requestId);
        render();
        result(m.reason === 'answered' ? 'The request was answered on another screen.' : 'The request was withdrawn or has expired.');
      }
      break;
    case 'ack':
      await onAck(m);
      break;
    case 'error':
      result(errorText(m, 'The service refused a message from this phone.'), 'error');
      break;
    default:
      break; // service messages are tolerant (doc "Encoding"): unknown types are ignored
  }
}

async function onRequest(m) {
  if (typeof m.requestId !== 'string' || typeof m.nonce !== 'string' || !P.b64uDecode(m.nonce)) {
    console.warn('a request without a readable requestId or nonce was dropped');
    return;
  }
  if (done.has(m.requestId) || requests.has(m.requestId)) return; // delivered again
  try {
    const checked =
      m.type === 'signRequest'
        ? await P.checkSignRequest(m, state.credentialId, nowSeconds())
        : { code: await P.checkApprovalRequest(m, state.credentialId, nowSeconds()) };
    requests.set(m.requestId, { m, checked });
    render();
  } catch (e) {
    if (!(e instanceof P.Declined)) throw e;
    done.add(m.requestId);
    result(`A request was declined by this phone: ${e.message}.`, 'error');
    await answer(m, { type: 'decline', reason: e.reason }, m.label ?? '', 'declined');
  }
}

function render() {
  const first = requests.values().next();
  const card = $('request');
  if (first.done) {
    card.hidden = true;
    $('idle').hidden = false;
    return;
  }
  const { m, checked } = first.value;
  const sign = m.type === 'signRequest';
  const n = sign ? m.digests.length : m.numSignatures;
  $('req-title').textContent = sign ? (n === 1 ? 'Sign a document' : `Sign ${n} documents`) : `Approve ${n === 1 ? 'a signature' : `${n} signatures`}`;
  $('req-application').textContent = m.application || 'an application';
  $('req-label').textContent = m.label || (sign ? (n === 1 ? '1 document' : `${n} documents`) : '—');
  $('req-description').textContent = m.description || '';
  $('req-description').hidden = $('req-description-t').hidden = !m.description;
  $('req-count').textContent = String(n);
  $('req-code').textContent = checked.code ?? '—';
  // The preview is the service's own (a capability URL under /device/v1/preview): only a link
  // to this origin is followed; opened in a new tab without a referrer.
  let preview = null;
  try {
    const u = m.preview && m.preview.href ? new URL(m.preview.href, location.href) : null;
    if (u && u.origin === location.origin) preview = u.href;
  } catch {
    preview = null;
  }
  $('req-preview-p').hidden = !preview;
  if (preview) $('req-preview').href = preview;
  $('sign').textContent = sign ? 'Sign' : 'Approve';
  $('sign').disabled = $('decline').disabled = false;
  card.dataset.requestId = m.requestId;
  card.hidden = false;
  $('idle').hidden = true;
  tick();
}

// The countdown; a request the signer let expire is declined with `expired`.
function tick() {
  const first = requests.values().next();
  if (first.done) return;
  const { m } = first.value;
  const left = m.expiresAt - nowSeconds();
  if (left <= 0) {
    requests.delete(m.requestId);
    done.add(m.requestId);
    render();
    result('The request expired before you decided.', 'error');
    answer(m, { type: 'decline', reason: 'expired' }, m.label ?? '', 'declined');
    return;
  }
  $('req-expires').textContent = `in ${left} s`;
}
setInterval(tick, 1000);

$('sign').addEventListener('click', async () => {
  const first = requests.values().next();
  if (first.done) return;
  const { m, checked } = first.value;
  $('sign').disabled = $('decline').disabled = true;
  requests.delete(m.requestId);
  done.add(m.requestId);
  try {
    if (m.type === 'signRequest') {
      result('Signing…');
      const signatures = await P.signDtbs(state.signingKey.privateKey, checked.hash, checked.dtbs);
      await answer(
        m,
        { type: 'signature', verificationCode: checked.code, digests: checked.digests.map(P.b64uEncode), signatures },
        m.label,
        'signed',
      );
    } else {
      const body = { type: 'approval' };
      if (checked.code) body.verificationCode = checked.code;
      await answer(m, body, m.label ?? '', 'approved');
    }
  } finally {
    render();
  }
});

$('decline').addEventListener('click', async () => {
  const first = requests.values().next();
  if (first.done) return;
  const { m } = first.value;
  $('sign').disabled = $('decline').disabled = true;
  requests.delete(m.requestId);
  done.add(m.requestId);
  render();
  await answer(m, { type: 'decline', reason: 'user_refused' }, m.label ?? '', 'declined');
});

// An answer (signature, approval, decline): the request's id and nonce, a fresh counter, signed
// with the device key. Kept until its ack, so that a `replayed` refusal (another tab took the
// counter) is sent again once with a higher one.
async function answer(m, body, label, what) {
  const entry = { m, body, label, what, tries: 0 };
  outbox.set(m.requestId, entry);
  await sendAnswer(entry);
}

async function sendAnswer(entry) {
  entry.tries += 1;
  const counter = await P.nextCounter();
  const payload = { type: entry.body.type, v: 1, aud: state.aud, counter, requestId: entry.m.requestId, nonce: entry.m.nonce };
  for (const [k, v] of Object.entries(entry.body)) if (k !== 'type') payload[k] = v;
  const jws = await P.signJws(state.deviceKey.privateKey, state.deviceId, payload);
  if (!transport) return;
  try {
    await transport.send(jws, entry.m.requestId);
  } catch {
    result('The answer could not be sent: the service cannot be reached.', 'error');
  }
}

async function onAck(m) {
  const entry = outbox.get(m.requestId);
  if (!entry) return;
  if (!m.accepted && m.error === 'replayed' && entry.tries < 2) {
    await sendAnswer(entry);
    return;
  }
  outbox.delete(m.requestId);
  const name = entry.label ? ` “${entry.label}”` : '';
  if (m.accepted) {
    const text = { signed: `Signed${name}.`, approved: `Approved${name}.`, declined: `Declined${name}.` }[entry.what];
    result(text, entry.what === 'declined' ? '' : 'lead');
  } else {
    result(`The service refused this phone’s answer${name}: ${errorText(m, m.error || 'refused')}`, 'error');
  }
  document.body.dataset.lastAck = `${entry.what}:${m.accepted ? 'accepted' : m.error || 'refused'}`;
}

// ---- transport (doc "Transport", "Connection") ----------------------------------------------------

function helloFor(challenge) {
  return P.nextCounter().then((counter) =>
    P.signJws(state.deviceKey.privateKey, state.deviceId, {
      type: 'hello',
      v: 1,
      aud: state.aud,
      counter,
      challenge,
      agent: AGENT,
    }),
  );
}

// Refusals after which retrying cannot help (doc "Connection"): the device stops until it is
// paired again or the page is updated.
const FATAL = new Set(['foreign', 'unpaired', 'malformed', 'unsupported_version', 'unsupported']);

function stopped(m) {
  connection('stopped', 'stopped');
  status(
    m && m.error === 'unpaired'
      ? 'This phone is no longer paired with the service (revoked?). Unpair it below and pair again.'
      : `The service refused this phone: ${errorText(m, 'refused')}.`,
    'error',
  );
}

// Long-polling: GET a challenge, then POST a signed hello per poll; each answer is an array of
// service messages ending with the next challenge. Answers go to /device/v1/answer.
class Poller {
  constructor() {
    this.stopped = false;
    this.name = 'long-polling';
  }

  stop() {
    this.stopped = true;
  }

  async run() {
    let challenge = null;
    let backoff = 1000;
    let refusals = 0;
    while (!this.stopped) {
      try {
        if (!challenge) {
          const r = await fetch('/device/v1/challenge', { cache: 'no-store', credentials: 'omit' });
          const c = await r.json();
          if (!r.ok || !c || c.type !== 'challenge') throw new Error('no challenge');
          challenge = c;
        }
        if (Number.isSafeInteger(challenge.counter)) await P.noteServiceCounter(challenge.counter);
        const hello = await helloFor(challenge.challenge);
        challenge = null;
        if (this.stopped) return;
        connection('online', 'connected (long-polling)');
        const r = await post('/device/v1/poll', hello, 'application/jose');
        if (r.status === 200 && Array.isArray(r.body)) {
          backoff = 1000;
          refusals = 0;
          for (const m of r.body) {
            if (m && m.type === 'challenge') challenge = m;
            else await handle(m);
          }
          continue;
        }
        const e = r.body;
        if (e && Number.isSafeInteger(e.counter)) await P.noteServiceCounter(e.counter);
        if (e && FATAL.has(e.error)) {
          stopped(e);
          return;
        }
        // replayed, late: a fresh challenge and a higher counter (doc "Connection"); anything
        // else (a restart, a proxy): back off.
        refusals += 1;
        if ((r.status === 409 || r.status === 410) && refusals < 5) continue;
        throw new Error(`poll: HTTP ${r.status}`);
      } catch {
        challenge = null;
        if (this.stopped) return;
        connection('offline', `offline, retrying in ${Math.round(backoff / 1000)} s`);
        await sleep(jitter(backoff));
        backoff = Math.min(backoff * 2, 60000);
      }
    }
  }

  async send(jws, requestId) {
    const r = await post('/device/v1/answer', jws, 'application/jose');
    const b = r.body;
    if (b && b.type === 'ack') return handle(b);
    // A refusal as an `error`: the ack the WebSocket would have sent.
    return handle({
      type: 'ack',
      v: 1,
      requestId,
      accepted: false,
      error: (b && b.error) || `HTTP ${r.status}`,
      errorDescription: b && b.errorDescription,
      counter: b && b.counter,
    });
  }
}

// The WebSocket (RFC 6455, subprotocol cloudsign-device.v1): the service's first frame is a
// challenge, ours a hello; then requests arrive as frames and answers leave as frames. A socket
// that never becomes ready (no upgrade, a proxy in the way) makes the page fall back to
// long-polling.
class Socket {
  constructor(onUnavailable) {
    this.stopped = false;
    this.name = 'WebSocket';
    this.onUnavailable = onUnavailable;
    this.ws = null;
    this.everReady = false;
  }

  stop() {
    this.stopped = true;
    if (this.ws) this.ws.close(1000);
  }

  run(backoff = 1000) {
    if (this.stopped) return;
    const url = `${location.protocol === 'https:' ? 'wss:' : 'ws:'}//${location.host}/device/v1/connect`;
    let ready = false;
    let ws;
    try {
      ws = new WebSocket(url, 'cloudsign-device.v1');
    } catch {
      this.onUnavailable();
      return;
    }
    this.ws = ws;
    ws.onmessage = async (ev) => {
      let m;
      try {
        m = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (!m || m.v !== 1) return;
      if (m.type === 'challenge') {
        if (Number.isSafeInteger(m.counter)) await P.noteServiceCounter(m.counter);
        if (!ready) ws.send(await helloFor(m.challenge));
        return;
      }
      if (m.type === 'ready') {
        ready = true;
        this.everReady = true;
        backoff = 1000;
        if (Number.isSafeInteger(m.counter)) await P.noteServiceCounter(m.counter);
        connection('online', 'connected (WebSocket)');
        return;
      }
      if (m.type === 'error' && FATAL.has(m.error)) {
        this.stopped = true;
        stopped(m);
        return;
      }
      await handle(m);
    };
    ws.onclose = (ev) => {
      this.ws = null;
      if (this.stopped) return;
      if (!this.everReady) {
        this.onUnavailable();
        return;
      }
      if (ev.code === 1008) {
        stopped(null);
        return;
      }
      connection('offline', `offline, retrying in ${Math.round(backoff / 1000)} s`);
      setTimeout(() => this.run(Math.min(backoff * 2, 60000)), jitter(backoff));
    };
  }

  async send(jws) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) throw new Error('not connected');
    this.ws.send(jws);
  }
}

function connect() {
  if (transport) transport.stop();
  connection('connecting', 'connecting…');
  const poll = () => {
    transport = new Poller();
    transport.run();
  };
  // `?transport=poll` forces long-polling (networks that break WebSockets; tests).
  if (!('WebSocket' in window) || new URLSearchParams(location.search).get('transport') === 'poll') {
    poll();
    return;
  }
  const socket = new Socket(() => {
    if (transport === socket) poll();
  });
  transport = socket;
  socket.run();
}

main().catch(() => status('This page failed to start. Reload it.', 'error'));
