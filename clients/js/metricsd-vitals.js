// metricsd browser client: wires Google's web-vitals to metricsd's POST /v1/beacons/vitals
// and sends browser-side operations (reportOperation) to POST /v1/beacons/operations.
// An ES module with no build step; web-vitals is a peer dependency; types in index.d.ts.
//
// Metrics are queued and sent when the page is hidden or left (the last moment a browser
// reliably runs code), as one JSON array per request, with navigator.sendBeacon and a
// string body: a text/plain request, so no CORS preflight. fetch(..., {keepalive: true})
// is the fallback when sendBeacon is missing or refuses the body.
import { onCLS, onFCP, onINP, onLCP, onTTFB } from 'web-vitals';

// sendBeacon and keepalive fetch share a 64 KiB in-flight budget per page; stay under it.
export const DEFAULT_MAX_BODY_BYTES = 60000;

const encoder = new TextEncoder();

/** Bytes a string takes on the wire (UTF-8), which is what body limits count. */
function byteLength(text) {
  return encoder.encode(text).length;
}

// Operations are sent when this many are queued, or this long after the first one.
export const OPERATIONS_BATCH = 50;
export const OPERATIONS_FLUSH_MS = 5000;
export const OUTCOMES = ['ok', 'error', 'timeout', 'cancelled'];

/** The reporter initVitals created last: the one the module-level reportOperation uses. */
let current = null;

/** metricsd's operations URL beside its vitals URL (same origin and prefix). */
export function operationsEndpointOf(endpoint) {
  return endpoint.replace(/\/vitals\/?(?=$|[?#])/, '/operations');
}

/**
 * Run the beforeSend hook over items: it returns the item (edited or not) to send it,
 * or null/undefined/false to drop it. A hook that throws drops the item: a privacy filter
 * that fails must not leak what it was meant to remove.
 */
export function applyBeforeSend(items, beforeSend, kind) {
  if (typeof beforeSend !== 'function') return items;
  const out = [];
  for (const item of items) {
    let kept;
    try {
      kept = beforeSend({ ...item }, kind);
    } catch (_) {
      kept = null;
    }
    if (kept && typeof kept === 'object') out.push(kept);
  }
  return out;
}

/** The fields metricsd reads; web-vitals' `entries` hold DOM nodes and are never sent. */
export function toBeacon(metric, page) {
  return {
    name: metric.name,
    value: metric.value,
    rating: metric.rating,
    delta: metric.delta,
    id: metric.id,
    navigationType: metric.navigationType,
    page,
  };
}

/**
 * Split items into JSON array strings of at most maxBytes each.
 * An item that alone exceeds the limit cannot be sent and is skipped.
 */
export function toBodies(items, maxBytes = DEFAULT_MAX_BODY_BYTES) {
  const bodies = [];
  let parts = [];
  let size = 2; // the brackets
  for (const item of items) {
    const json = JSON.stringify(item);
    const bytes = byteLength(json);
    if (bytes + 2 > maxBytes) continue;
    if (parts.length && size + 1 + bytes > maxBytes) {
      bodies.push(`[${parts.join(',')}]`);
      parts = [];
      size = 2;
    }
    size += bytes + (parts.length ? 1 : 0);
    parts.push(json);
  }
  if (parts.length) bodies.push(`[${parts.join(',')}]`);
  return bodies;
}

/** Send one body; sendBeacon first, keepalive fetch when it is missing or says no. */
function send(endpoint, body) {
  try {
    if (typeof navigator.sendBeacon === 'function' && navigator.sendBeacon(endpoint, body)) {
      return 'beacon';
    }
  } catch (_) {
    // Some browsers throw on a cross-origin or oversized beacon; fall through to fetch.
  }
  try {
    fetch(endpoint, {
      method: 'POST',
      body,
      keepalive: true,
      headers: { 'Content-Type': 'text/plain;charset=UTF-8' },
    }).catch(() => {});
    return 'fetch';
  } catch (_) {
    return 'none';
  }
}

// --- vitals (issue 17): device, connection, soft navigations, attribution ---------------
// Kept apart from the transport and the options above so both can change independently.

export const DEVICES = ['mobile', 'tablet', 'desktop'];
export const CONNECTIONS = ['4g', '3g', '2g', 'slow-2g'];

/** 'mobile' when the browser says so (UA client hints); else undefined: metricsd decides. */
export function deviceClass(override) {
  if (DEVICES.includes(override)) return override;
  const data = typeof navigator !== 'undefined' ? navigator.userAgentData : undefined;
  return data && data.mobile === true ? 'mobile' : undefined;
}

/** navigator.connection.effectiveType when the browser has it. */
export function connectionType() {
  const conn = typeof navigator !== 'undefined' ? navigator.connection : undefined;
  const type = conn && conn.effectiveType;
  return CONNECTIONS.includes(type) ? type : undefined;
}

/** The path of a URL (soft navigations report navigationURL), or undefined. */
function pathOf(url) {
  try {
    return new URL(url, location.href).pathname;
  } catch (_) {
    return undefined;
  }
}

/**
 * The page a metric belongs to: after a soft navigation, the route of its navigationURL
 * (through options.route when given); else options.page (string or function); else
 * location.pathname.
 */
export function pageFor(metric, page, route) {
  if (metric.navigationType === 'soft-navigation' && metric.navigationURL) {
    const path = pathOf(metric.navigationURL);
    if (path) return (typeof route === 'function' && route(path, metric)) || path;
  }
  return (typeof page === 'function' ? page(metric) : page) || location.pathname;
}

const round = (ms) => (typeof ms === 'number' && Number.isFinite(ms) && ms >= 0
  ? Math.round(ms * 100) / 100 : undefined);

/** The longest script of INP's long animation frames (web-vitals 5: longestScript; 4: LoAF). */
function longestScriptURL(a) {
  if (a.longestScript && a.longestScript.entry) return a.longestScript.entry.sourceURL;
  let best;
  for (const frame of a.longAnimationFrameEntries || []) {
    for (const script of frame.scripts || []) {
      if (!best || script.duration > best.duration) best = script;
    }
  }
  return best ? best.sourceURL : undefined;
}

/**
 * The few attribution fields metricsd keeps (web-vitals attribution build, 4.x to 6.x);
 * never entries or DOM nodes. Undefined when the metric carries no attribution.
 */
export function attributionOf(metric) {
  const a = metric.attribution;
  if (!a) return undefined;
  let out;
  if (metric.name === 'INP') {
    out = {
      target: a.interactionTarget,
      interactionType: a.interactionType,
      inputDelay: round(a.inputDelay),
      processingDuration: round(a.processingDuration),
      presentationDelay: round(a.presentationDelay),
      scriptURL: longestScriptURL(a),
    };
  } else if (metric.name === 'LCP') {
    out = {
      target: a.target || a.element,
      url: a.url,
      timeToFirstByte: round(a.timeToFirstByte),
      resourceLoadDelay: round(a.resourceLoadDelay),
      resourceLoadDuration: round(a.resourceLoadDuration ?? a.resourceLoadTime),
      elementRenderDelay: round(a.elementRenderDelay),
    };
  } else if (metric.name === 'CLS') {
    out = { target: a.largestShiftTarget };
  } else {
    return undefined;
  }
  for (const key of Object.keys(out)) {
    if (out[key] === undefined || out[key] === null || out[key] === '') delete out[key];
  }
  return Object.keys(out).length ? out : undefined;
}

/** Device, connection and (optionally) attribution added to one beacon. */
export function withContext(beacon, metric, options = {}) {
  const device = deviceClass(options.device);
  if (device) beacon.device = device;
  const connection = connectionType();
  if (connection) beacon.connection = connection;
  if (options.attribution) {
    const attribution = attributionOf(metric);
    if (attribution) beacon.attribution = attribution;
  }
  return beacon;
}

/**
 * Register the web-vitals callbacks: the standard build, or with options.attribution the
 * attribution build ('web-vitals/attribution', loaded on demand). reportSoftNavs is passed
 * through for the web-vitals builds that follow soft navigations.
 */
function observe(callback, options) {
  const opts = { reportAllChanges: true, reportSoftNavs: Boolean(options.softNavigations) };
  const register = (lib) => {
    lib.onTTFB(callback, opts);
    lib.onFCP(callback, opts);
    lib.onLCP(callback, opts);
    lib.onCLS(callback, opts);
    lib.onINP(callback, opts);
  };
  if (!options.attribution) {
    register({ onCLS, onFCP, onINP, onLCP, onTTFB });
    return Promise.resolve();
  }
  return import('web-vitals/attribution').then(register);
}

/**
 * Start reporting this page view's Web Vitals to metricsd.
 *
 * options.endpoint        metricsd's URL, e.g. 'https://metricsd.example.com/v1/beacons/vitals'
 * options.page            route template ('/products/:id'), or a function of the metric
 *                         returning one; default location.pathname
 * options.sampleRate      0..1, decided once per page view (default 1: every view)
 * options.maxBodyBytes    upper bound of one request body (default 60000)
 * options.attribution     true: use web-vitals' attribution build and send its few
 *                         explaining fields (selectors, sub-parts; default false)
 * options.softNavigations true: follow soft navigations (web-vitals builds that report them)
 * options.route           path => template, for soft navigations' navigationURL
 * options.device          'mobile' | 'tablet' | 'desktop' when the app knows better
 * options.beforeSend      item => item | null: edit an item, or drop it (null/false)
 * options.service         the `service` label of operations (default 'web')
 * options.operationsEndpoint  default: endpoint with /vitals replaced by /operations
 *
 * Returns {sampled, flush, ready, reportOperation} (`ready` resolves once the web-vitals
 * observers are registered); call flush() yourself on a soft navigation if you like. Operations are not sampled: sampleRate applies to Web Vitals only.
 */
export function initVitals(options = {}) {
  const {
    endpoint,
    page,
    sampleRate = 1,
    maxBodyBytes = DEFAULT_MAX_BODY_BYTES,
    beforeSend,
    service = 'web',
  } = options;
  if (!endpoint) throw new Error('metricsd: initVitals needs an endpoint');
  const operationsEndpoint = options.operationsEndpoint || operationsEndpointOf(endpoint);
  const operations = [];
  let operationsTimer = null;

  function flushOperations() {
    if (operationsTimer !== null) {
      clearTimeout(operationsTimer);
      operationsTimer = null;
    }
    if (!operations.length) return;
    const items = applyBeforeSend(operations.splice(0), beforeSend, 'operations');
    for (const body of toBodies(items, maxBodyBytes)) send(operationsEndpoint, body);
  }

  /** One operation measured in the page, e.g. a WebSocket message's delivery time. */
  function reportOperation(name, durationMs, outcome = 'ok') {
    if (typeof name !== 'string' || !name) return false;
    if (typeof durationMs !== 'number' || !Number.isFinite(durationMs) || durationMs < 0) {
      return false;
    }
    operations.push({
      service,
      operation: name,
      outcome: OUTCOMES.includes(outcome) ? outcome : 'error',
      duration_ms: durationMs,
      timestamp: Date.now(),
    });
    if (operations.length >= OPERATIONS_BATCH) flushOperations();
    else if (operationsTimer === null) {
      operationsTimer = setTimeout(flushOperations, OPERATIONS_FLUSH_MS);
    }
    return true;
  }

  addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') flushOperations();
  });
  addEventListener('pagehide', flushOperations);

  // One decision per page view, so a sampled view reports all of its metrics or none.
  const sampled = Math.random() < sampleRate;
  if (!sampled) {
    current = { sampled, flush: flushOperations, ready: Promise.resolve(), reportOperation };
    return current;
  }

  // Keyed by web-vitals' id: a later report of the same metric (CLS, INP grow) replaces
  // the queued one, so a flush sends each metric once with its latest value.
  const queue = new Map();
  // Value last sent per id, so `delta` is the change since metricsd last heard of it.
  const sent = new Map();
  const pageOf = (metric) => pageFor(metric, page, options.route);

  function enqueue(metric) {
    const beacon = withContext(toBeacon(metric, pageOf(metric)), metric, options);
    beacon.delta = metric.value - (sent.get(metric.id) ?? 0);
    queue.set(metric.id, beacon);
  }

  function flush() {
    flushOperations();
    if (!queue.size) return;
    const items = [...queue.values()];
    queue.clear();
    for (const item of items) sent.set(item.id, item.value);
    const kept = applyBeforeSend(items, beforeSend, 'vitals');
    for (const body of toBodies(kept, maxBodyBytes)) send(endpoint, body);
  }

  // reportAllChanges costs nothing here (reports only replace the queued entry) and
  // catches values web-vitals settles during the hide itself: an interaction still waiting
  // for its idle callback when the page is left is otherwise never reported as INP.
  const ready = observe(enqueue, options);

  // Bubble-phase listeners on window run after web-vitals' capture-phase ones, so CLS,
  // INP and LCP are already queued when we flush. pagehide covers Safari, which does not
  // always fire visibilitychange when a page is unloaded.
  addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') flush();
  });
  addEventListener('pagehide', flush);
  current = { sampled, flush, ready, reportOperation };
  return current;
}

/**
 * Report an operation through the reporter initVitals created last.
 * Returns false (and sends nothing) before initVitals or for an invalid duration.
 */
export function reportOperation(name, durationMs, outcome = 'ok') {
  return current ? current.reportOperation(name, durationMs, outcome) : false;
}
