import t from 'tap';
import { predict, sample, scrape, testApp, trainRows } from './helpers/app.js';

const id = 'model="diabetes",version="1"';
const BOUND_MS = 50;

/**
 * Keeps the event loop blocked in slices of `sliceMs` (a busy loop, as a CPU-bound handler
 * would), yielding between slices so timers run, until `done()` holds; fails after `maxMs`.
 */
async function blockLoopUntil(done: () => boolean, sliceMs: number, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${maxMs} ms`);
    const end = Date.now() + sliceMs;
    while (Date.now() < end) {
      // busy: this is the lag
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

async function waitUntil(done: () => boolean, maxMs: number): Promise<void> {
  const deadline = Date.now() + maxMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`condition not reached within ${maxMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

t.test('past the event-loop lag bound: predictions get 503 + Retry-After, counted as overloaded; metrics and health answer', async (t) => {
  const { app } = await testApp(t, ['--max-event-loop-delay-ms', String(BOUND_MS)]);
  t.equal((await predict(app, { features: trainRows[0] })).statusCode, 200, 'served before the overload');
  t.notOk(app.overload.shedding, 'a server that just started is not shedding, however long its start-up blocked');

  // 200 ms slices: each one-second sample of the lag averages well above the 50 ms bound.
  await blockLoopUntil(() => app.overload.shedding, 200, 10_000);
  const lag = app.overload.lagMs;
  t.ok(lag > BOUND_MS, `measured lag ${lag} ms is above the bound`);

  const shed = await predict(app, { features: trainRows[1] });
  t.equal(shed.statusCode, 503);
  t.equal(shed.headers['retry-after'], '1', 'Retry-After: the guard re-measures every second');
  t.match(shed.json(), {
    statusCode: 503,
    code: 'MW_ERR_OVERLOADED',
    error: 'Service Unavailable',
    message: new RegExp(`^server is overloaded: event-loop lag \\d+ ms is above --max-event-loop-delay-ms ${BOUND_MS}; retry after 1 s$`),
  });
  const batch = await predict(app, { instances: trainRows.slice(0, 4) });
  t.equal(batch.statusCode, 503, 'a batch is shed too');
  const bad = await predict(app, { features: 'not even valid' });
  t.equal(bad.statusCode, 503, 'shed before the body is looked at');

  for (const url of ['/healthz', '/readyz']) t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, `${url} answers under pressure`);
  const metrics = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(metrics.statusCode, 200, '/metrics answers under pressure');
  t.ok(app.overload.shedding, 'all of the above happened while the guard was on');

  const m = metrics.body;
  t.equal(sample(m, `model_requests_total{${id},outcome="overloaded"}`), 3, 'each shed request counted once');
  t.equal(sample(m, `model_requests_total{${id},outcome="ok"}`), 1);
  t.equal(sample(m, `model_requests_total{${id},outcome="invalid"}`), 0, 'a shed bad body is not counted as invalid: it was never read');
  t.equal(sample(m, `model_requests_total{${id},outcome="error"}`), 0);
  t.equal(sample(m, `model_prediction_value_count{${id}}`), 1, 'a shed request never reaches the model or the monitoring');
  t.equal(sample(m, `model_inference_duration_seconds_count{${id}}`), 1);

  // The lag is gone: within a sample or two the guard lets predictions through again.
  await waitUntil(() => !app.overload.shedding, 5000);
  t.equal((await predict(app, { features: trainRows[2] })).statusCode, 200, 'served again once the lag is gone');
  t.equal(sample(await scrape(app), `model_requests_total{${id},outcome="ok"}`), 2);
});

t.test('--max-event-loop-delay-ms 0 turns the guard off', async (t) => {
  const { app } = await testApp(t, ['--max-event-loop-delay-ms', '0']);
  await app.ready();
  // Two sample intervals of blocked loop: the lag is far above any bound, yet nothing is shed.
  const until = Date.now() + 2200;
  await blockLoopUntil(() => Date.now() > until, 200, 10_000);
  t.ok(app.overload.lagMs > 100, `lag measured (${app.overload.lagMs} ms)`);
  t.notOk(app.overload.shedding);
  t.equal((await predict(app, { features: trainRows[0] })).statusCode, 200);
  t.equal(sample(await scrape(app), `model_requests_total{${id},outcome="overloaded"}`), 0);
});
