import { connect, type Socket } from 'node:net';
import t from 'tap';
import { predict, sample, scrape, testApp, trainRows } from './helpers/app.js';
import { listen } from './helpers/sidecar.js';

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

t.test('past the event-loop delay bound: predictions get 503 + Retry-After, counted as overloaded; metrics and health answer', async (t) => {
  const { app } = await testApp(t, ['--max-event-loop-delay-ms', String(BOUND_MS), '--max-requests-in-flight', '0']);
  t.equal((await predict(app, { features: trainRows[0] })).statusCode, 200, 'served before the overload');
  t.notOk(app.overload.shedding, 'a server that just started is not shedding, however long its start-up blocked');

  await blockLoopUntil(() => app.overload.shedding, 200, 10_000);
  const delay = app.overload.delayMs;
  t.ok(delay > BOUND_MS, `measured delay ${delay} ms is above the bound`);

  const shed = await predict(app, { features: trainRows[1] });
  t.equal(shed.statusCode, 503);
  t.equal(shed.headers['retry-after'], '1', 'Retry-After: the guard re-measures every second');
  t.equal(shed.headers.connection, 'keep-alive', 'a small body is drained and its connection kept');
  t.match(shed.json(), {
    statusCode: 503,
    code: 'MW_ERR_OVERLOADED',
    error: 'Service Unavailable',
    message: new RegExp(`^server is overloaded: the event loop stalled for \\d+ ms in the last second, above --max-event-loop-delay-ms ${BOUND_MS}; retry after 1 s$`),
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

t.test('--max-event-loop-delay-ms 0 turns the delay bound off', async (t) => {
  const { app } = await testApp(t, ['--max-event-loop-delay-ms', '0']);
  await app.ready();
  // Two sample intervals of blocked loop: the lag is far above any bound, yet nothing is shed.
  const until = Date.now() + 2200;
  await blockLoopUntil(() => Date.now() > until, 200, 10_000);
  t.ok(app.overload.delayMs > 100, `delay measured (${app.overload.delayMs} ms)`);
  t.notOk(app.overload.shedding);
  t.equal((await predict(app, { features: trainRows[0] })).statusCode, 200);
  t.equal(sample(await scrape(app), `model_requests_total{${id},outcome="overloaded"}`), 0);
});

t.test('one long stall is seen: a single 600 ms block sheds, though the mean of that second stays near 20 ms', async (t) => {
  const { app } = await testApp(t, ['--max-event-loop-delay-ms', '200']);
  await app.ready();
  // A whole sample interval of idle 10 ms ticks first, then one stall and nothing else.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const end = Date.now() + 600;
  while (Date.now() < end) {
    // busy: one stall, as one huge body parsed in one go would be
  }
  let shed;
  for (let i = 0; i < 60 && shed === undefined; i++) {
    const answer = await predict(app, { features: trainRows[0] });
    if (answer.statusCode === 503) shed = answer;
    else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.ok(shed, 'a prediction was shed within 3 s of the stall');
  t.match(shed?.json().message, /^server is overloaded: the event loop stalled for \d+ ms in the last second, above --max-event-loop-delay-ms 200; retry after 1 s$/);
  t.equal((await app.inject({ method: 'GET', url: '/healthz' })).statusCode, 200, 'the probe answers');
  await waitUntil(() => !app.overload.shedding, 5000);
  t.equal((await predict(app, { features: trainRows[1] })).statusCode, 200, 'a quiet second later, served again');
});

/** Opens a raw connection and sends a /predict whose body stops short, so the request stays in flight. */
async function stalledPredict(port: number, body: string, sentBytes: number): Promise<Socket> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  socket.write(`POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, sentBytes)}`);
  return socket;
}

t.test('past --max-requests-in-flight: shed at once, before any delay is measured; the count follows answers and aborts', async (t) => {
  const { app } = await testApp(t, ['--max-requests-in-flight', '2', '--max-event-loop-delay-ms', '0']);
  const port = Number(new URL(await listen(app)).port);
  const body = JSON.stringify({ features: trainRows[0] });
  const first = await stalledPredict(port, body, 5);
  const second = await stalledPredict(port, body, 5);
  t.teardown(() => {
    first.destroy();
    second.destroy();
  });
  await waitUntil(() => app.overload.inFlight === 2, 5000);

  const shed = await predict(app, { features: trainRows[1] });
  t.equal(shed.statusCode, 503);
  t.equal(shed.headers['retry-after'], '1');
  t.same(shed.json(), {
    statusCode: 503,
    code: 'MW_ERR_OVERLOADED',
    error: 'Service Unavailable',
    message: 'server is overloaded: 2 requests are in flight, the most --max-requests-in-flight allows; retry after 1 s',
  });
  for (const url of ['/healthz', '/readyz', '/metrics']) t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, `${url} answers and is not counted`);
  t.equal(app.overload.inFlight, 2);

  // The first one's body arrives: it is answered, and its slot is free again.
  const answered = new Promise<string>((resolve) => {
    let text = '';
    first.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      if (text.includes('"prediction"')) resolve(text);
    });
  });
  first.write(body.slice(5));
  t.match(await answered, /^HTTP\/1.1 200 OK/);
  await waitUntil(() => app.overload.inFlight === 1, 5000);
  // The second client gives up: an aborted request frees its slot too.
  second.destroy();
  await waitUntil(() => app.overload.inFlight === 0, 5000);
  t.equal((await predict(app, { features: trainRows[2] })).statusCode, 200, 'served again');
  t.equal(app.overload.inFlight, 0, 'an answered inject is released as well');

  const m = await scrape(app);
  t.equal(sample(m, `model_requests_total{${id},outcome="overloaded"}`), 1);
  t.equal(sample(m, `model_requests_total{${id},outcome="ok"}`), 2);
});

t.test('a shed request with a big body gets Connection: close, so its body is not read', async (t) => {
  const { app } = await testApp(t, ['--max-requests-in-flight', '1', '--max-event-loop-delay-ms', '0']);
  const port = Number(new URL(await listen(app)).port);
  const stalled = await stalledPredict(port, JSON.stringify({ features: trainRows[0] }), 5);
  t.teardown(() => stalled.destroy());
  await waitUntil(() => app.overload.inFlight === 1, 5000);
  const big = JSON.stringify({ instances: Array.from({ length: 2048 }, (_, i) => trainRows[i % trainRows.length]) });
  t.ok(big.length > 64 * 1024, `${big.length} bytes`);
  const shed = await predict(app, JSON.parse(big));
  t.equal(shed.statusCode, 503);
  t.equal(shed.headers.connection, 'close');
});
