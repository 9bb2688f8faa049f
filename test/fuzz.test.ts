import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { FastifyInstance } from 'fastify';
import t from 'tap';
import { mulberry32 } from '../src/random.js';
import { diabetesBaseline, featureNames, predict, scrape, testApp, trainRows } from './helpers/app.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const id = 'model="diabetes",version="1"';
const SEED = 20_240_607;
const PREDICT_BODIES = 10_000;
const OTHER_ROUTE_BODIES = 1_000;
/** Heap growth allowed over the run after warm-up: a leak of 1 KB per request would exceed it. */
const HEAP_GROWTH_BYTES = 8 * 2 ** 20;
/** The one POST route that is not a prediction route (README, HTTP API): labels, counted apart. */
const FEEDBACK = '/feedback';

/** Every POST route the app has, with path parameters filled in: whatever the other plugins add is fuzzed too. */
function postRoutes(app: FastifyInstance): string[] {
  const stack: string[] = [];
  const routes: string[] = [];
  for (const line of app.printRoutes({ commonPrefix: false }).split('\n')) {
    const match = /^((?:[│ ] {3})*)[├└]── (\S+)(?: \(([^)]*)\))?$/.exec(line);
    if (!match) continue;
    const depth = match[1]!.length / 4;
    stack.length = depth;
    stack.push(match[2]!);
    if (match[3]?.split(', ').includes('POST')) routes.push(stack.join(''));
  }
  return routes.map((r) => r.replace(':name', diabetesBaseline.model).replace(':version', diabetesBaseline.version));
}

const random = mulberry32(SEED);
const int = (n: number) => Math.floor(random() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;

const numbers = [0, -0, 1, -1, 0.5, 59, 1e308, -1e308, 5e-324, 3.5e38, 2 ** 53 + 1, Number.MAX_SAFE_INTEGER, 1e-7, 123456.789];
const rawNumbers = ['1e400', '-1e400', '1e39', `1${'0'.repeat(400)}`, '0.' + '0'.repeat(400) + '1', '-0.0', '1E+2', '9'.repeat(5000)];
const keys = [
  'features', 'instances', 'prediction', 'predictions', 'id', 'actual', 'labels', 'inputs', 'outputs', 'name', 'shape', 'datatype', 'data', 'parameters',
  ...featureNames, '__proto__', 'constructor', 'prototype', '', ' ', 'features ', 'FEATURES', '\u0000', '😀', 'a'.repeat(300),
];

function randomString(): string {
  const length = pick([0, 1, 5, 36, 64, 1000, 20_000]);
  const kind = int(4);
  if (kind === 0) return 'x'.repeat(length);
  let s = '';
  for (let i = 0; i < Math.min(length, 2000); i++) {
    // ASCII, then the whole BMP (lone surrogates included), then astral characters.
    s += kind === 1 ? String.fromCharCode(32 + int(95)) : kind === 2 ? String.fromCharCode(int(0x10000)) : String.fromCodePoint(0x10000 + int(0x10000));
  }
  return s;
}

/** Values left for the body being made: random nesting would otherwise grow exponentially. */
let budget = 0;

function randomValue(depth: number): unknown {
  budget--;
  const kind = int(depth > 4 || budget <= 0 ? 5 : 8);
  switch (kind) {
    case 0: return null;
    case 1: return random() < 0.5;
    case 2: return pick(numbers) * (random() < 0.5 ? 1 : random() * 100);
    case 3: return randomString();
    case 4: return int(1000) - 500;
    case 5: return Array.from({ length: pick([0, 1, 2, 9, 10, 11, 64, 1025]) }, () => randomValue(depth + 1));
    default: return Object.fromEntries(Array.from({ length: int(6) }, () => [pick(keys), randomValue(depth + 1)]));
  }
}

/** Shaped like a request id; seeded, so a run repeats exactly. */
const seededId = () => Array.from({ length: 32 }, () => int(16).toString(16)).join('').replace(/^(.{8})(.{4})(.{4})(.{4})/, '$1-$2-$3-$4-');

/** A request each prediction route would accept, to mutate: most bugs hide next to valid input. */
function validBody(route: string): Record<string, unknown> {
  const row = pick(trainRows);
  const named = Object.fromEntries(featureNames.map((n, i) => [n, row[i]]));
  if (route === FEEDBACK) return random() < 0.5 ? { id: seededId(), actual: 150 } : { labels: [{ id: seededId(), actual: 1 }] };
  if (route.endsWith('/infer')) return { inputs: [{ name: 'input', shape: [1, row.length], datatype: 'FP32', data: row }] };
  const base = pick([{ features: row }, { features: named }, { instances: [row, pick(trainRows)] }]);
  return route === '/observe' ? { ...base, ...('instances' in base ? { predictions: [100, 200] } : { prediction: 150 }) } : base;
}

/** Replaces, deletes or adds one thing somewhere inside `value`. */
function mutate(value: unknown): unknown {
  if (Array.isArray(value)) {
    const copy = [...value];
    const op = int(4);
    if (op === 0 || copy.length === 0) copy.push(randomValue(2));
    else if (op === 1) copy.splice(int(copy.length), 1);
    else if (op === 2) copy[int(copy.length)] = randomValue(2);
    else copy[int(copy.length)] = mutate(copy[int(copy.length)]);
    return copy;
  }
  if (value !== null && typeof value === 'object') {
    const copy: Record<string, unknown> = { ...(value as Record<string, unknown>) };
    const names = Object.keys(copy);
    const op = int(4);
    if (op === 0 || names.length === 0) copy[pick(keys)] = randomValue(2);
    else if (op === 1) delete copy[pick(names)];
    else if (op === 2) copy[pick(names)] = randomValue(2);
    else copy[pick(names)] = mutate(copy[pick(names)]);
    return copy;
  }
  return randomValue(2);
}

const contentTypes = [
  'application/json', 'application/json', 'application/json', 'application/json; charset=utf-8', 'Application/JSON', 'application/json; charset=utf-16',
  'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/octet-stream', 'application/vnd.api+json',
  'text/json', 'application/json;;', '*/*', 'application', 'x/y; a="b"', undefined,
];

// Made once: building megabyte strings per request would make the run about the generator.
const deeplyNested = [
  ...[100, 1000, 10_000].flatMap((depth) => [`${'['.repeat(depth)}1${']'.repeat(depth)}`, `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`, '['.repeat(depth)]),
  `${'['.repeat(100_000)}1${']'.repeat(100_000)}`,
];
const overLimit = JSON.stringify({ features: 'y'.repeat(1_100_000) });

interface Body {
  payload: string | Buffer;
  contentType: string | undefined;
}

function randomBody(route: string): Body {
  budget = 3000;
  const contentType = random() < 0.8 ? 'application/json' : pick(contentTypes);
  const kind = int(10);
  let payload: string | Buffer;
  if (kind <= 2) payload = JSON.stringify(mutate(validBody(route)));
  else if (kind === 3) payload = JSON.stringify(validBody(route));
  else if (kind === 4) payload = JSON.stringify(randomValue(0)) ?? '';
  else if (kind === 5) payload = Buffer.from(Array.from({ length: pick([0, 1, 16, 300, 4000]) }, () => int(256)));
  else if (kind === 6) {
    // Deep nesting, balanced or not, in arrays or objects, bare or where a row belongs.
    const nested = pick(deeplyNested);
    payload = random() < 0.5 ? nested : `{"features": ${nested}}`;
  } else if (kind === 7) {
    // Numbers JSON.parse cannot keep: overflow, underflow, thousands of digits.
    const row = pick(trainRows).map(String);
    row[int(row.length)] = pick(rawNumbers);
    payload = `{"features": [${row.join(',')}]}`;
  } else if (kind === 8) {
    payload = JSON.stringify({ [pick(keys)]: randomString(), features: random() < 0.5 ? randomString() : pick(trainRows) });
  } else {
    // Now and then a body over the 1 MB limit.
    payload = random() < 0.05 ? overLimit : JSON.stringify(validBody(route)).slice(0, int(40));
  }
  return { payload, contentType };
}

interface Tally {
  ok: number;
  rejected: number;
}

t.test(`${PREDICT_BODIES} seeded random bodies at /predict and ${OTHER_ROUTE_BODIES} at every other POST route: no 5xx, every rejection counted, heap flat`, async (t) => {
  const { app } = await testApp(t);
  const routes = postRoutes(app);
  t.ok(routes.includes('/predict'), `routes found: ${routes.join(', ')}`);

  const counters = async () => {
    const m = await scrape(app);
    const total = (prefix: string) =>
      m.split('\n').filter((line) => line.startsWith(prefix)).reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
    return {
      invalid: total('model_invalid_inputs_total{'),
      requestsInvalid: total(`model_requests_total{${id},outcome="invalid"}`),
      requestsOk: total(`model_requests_total{${id},outcome="ok"}`),
      requestsFailed: total(`model_requests_total{${id},outcome="error"}`) + total(`model_requests_total{${id},outcome="overloaded"}`),
      feedbackRejected: total('model_feedback_rejected_total{'),
    };
  };

  let heapAfterWarmup = 0;
  let sent = 0;
  for (const route of routes) {
    const n = route === '/predict' ? PREDICT_BODIES : OTHER_ROUTE_BODIES;
    const before = await counters();
    const tally: Tally = { ok: 0, rejected: 0 };
    const unexpected: string[] = [];
    for (let i = 0; i < n; i++) {
      const { payload, contentType } = randomBody(route);
      const response = await app.inject({ method: 'POST', url: route, headers: contentType === undefined ? {} : { 'content-type': contentType }, payload });
      sent++;
      if (response.statusCode === 200) tally.ok++;
      else if (response.statusCode >= 400 && response.statusCode < 500) {
        tally.rejected++;
        const body = response.json();
        // The answer names the problem in a bounded message: user input is never echoed at length.
        if (body.statusCode !== response.statusCode || typeof body.code !== 'string' || typeof body.message !== 'string' || response.body.length > 2048) {
          unexpected.push(`${response.statusCode} ${response.body.slice(0, 300)}`);
        }
      } else unexpected.push(`${response.statusCode} ${response.body.slice(0, 300)} for ${String(payload).slice(0, 200)}`);
      if (sent === 2000) {
        gc();
        heapAfterWarmup = process.memoryUsage().heapUsed;
      }
    }
    const after = await counters();
    t.same(unexpected, [], `${route}: every answer is a 200 or a 4xx with a short JSON error body`);
    t.ok(tally.ok > 0 && tally.rejected > 0, `${route}: ${tally.ok} accepted, ${tally.rejected} rejected`);
    t.equal(after.requestsFailed - before.requestsFailed, 0, `${route}: no request counted as error or overloaded`);
    if (route === FEEDBACK) {
      t.equal(after.feedbackRejected - before.feedbackRejected, tally.rejected, `${route}: every rejection counted in model_feedback_rejected_total`);
      t.equal(after.invalid - before.invalid, 0, `${route}: labels are not model input`);
    } else {
      t.equal(after.invalid - before.invalid, tally.rejected, `${route}: every rejection counted in model_invalid_inputs_total`);
      t.equal(after.requestsInvalid - before.requestsInvalid, tally.rejected, `${route}: and as model_requests_total{outcome="invalid"}`);
      t.equal(after.requestsOk - before.requestsOk, tally.ok, `${route}: every 200 counted as ok`);
    }
  }
  gc();
  const growth = process.memoryUsage().heapUsed - heapAfterWarmup;
  t.ok(growth < HEAP_GROWTH_BYTES, `heap grew ${(growth / 2 ** 20).toFixed(1)} MB over ${sent - 2000} requests after warm-up`);
  t.equal((await predict(app, { features: trainRows[0] })).statusCode, 200, 'still serving');
});
