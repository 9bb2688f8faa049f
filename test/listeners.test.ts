import t from 'tap';
import { parseServeConfig } from '../src/config.js';
import { listen } from '../src/listeners.js';
import { diabetesBaseline, predict, sample, testApp, trainRows } from './helpers/app.js';
import { finished, freePort, httpRequest, spawnCli, waitReady, waitRefused } from './helpers/cli.js';

const id = `model="${diabetesBaseline.model}",version="${diabetesBaseline.version}"`;

t.test('by default one port serves everything and there is no metrics listener', async (t) => {
  const { app } = await testApp(t);
  t.equal(app.metricsListener, undefined);
  t.equal((await app.inject({ method: 'GET', url: '/metrics' })).statusCode, 200);
});

t.test('with --metrics-port, /metrics moves to the metrics listener, the probes answer on both, and both show one Watch', async (t) => {
  const { app } = await testApp(t, ['--metrics-port', '9464']);
  const metrics = app.metricsListener!;
  t.ok(metrics, 'a metrics listener is built');
  const moved = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(moved.statusCode, 404, '/metrics is gone from the main port');
  for (const url of ['/healthz', '/readyz']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 200, `${url} on the main port`);
    t.equal((await metrics.inject({ method: 'GET', url })).statusCode, 200, `${url} on the metrics port`);
  }
  t.same((await metrics.inject({ method: 'GET', url: '/readyz' })).json(), { status: 'ready', model: 'diabetes' });
  t.equal((await metrics.inject({ method: 'POST', url: '/predict', payload: {} })).statusCode, 404, 'no prediction route on the metrics port');
  t.equal((await predict(app, { features: trainRows[0] })).statusCode, 200);
  const scraped = await metrics.inject({ method: 'GET', url: '/metrics' });
  t.equal(scraped.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8');
  t.equal(sample(scraped.body, `model_requests_total{${id},outcome="ok"}`), 1, 'the prediction made on the main port is counted on the metrics port');
});

t.test('the metrics listener answers while the app drains, and closes with it', async (t) => {
  const port = await freePort();
  const metricsPort = await freePort();
  const { app } = await testApp(t, ['--metrics-port', String(metricsPort)]);
  let scrapedWhileDraining: number | undefined;
  app.addHook('preClose', async () => {
    scrapedWhileDraining = (await httpRequest(metricsPort, 'GET', '/metrics')).status;
  });
  await listen(app, { port, host: '127.0.0.1', metricsPort, metricsHost: '' });
  t.equal((await httpRequest(metricsPort, 'GET', '/readyz')).status, 200, 'an empty --metrics-host binds --host');
  await app.close();
  t.equal(scrapedWhileDraining, 200);
  await waitRefused(metricsPort);
  await waitRefused(port);
});

t.test('a metrics port equal to the port is refused by name', async (t) => {
  t.throws(() => parseServeConfig(['--port', '9000', '--metrics-port', '9000'], {}), {
    code: 'MW_ERR_CONFIG_INVALID',
    message: 'invalid option --metrics-port 9000 / --port 9000: the metrics port must differ from the port, or be 0 to serve /metrics on --port',
  });
});

t.test('serve listens on both ports, and SIGTERM closes both', async (t) => {
  const port = await freePort();
  const metricsPort = await freePort();
  const child = spawnCli(['serve', '--port', String(port), '--csv', '', '--log-level', 'warn'], {
    MODELWATCH_METRICS_PORT: String(metricsPort),
    MODELWATCH_METRICS_HOST: '127.0.0.1',
  });
  const exit = finished(child);
  t.teardown(() => void child.kill('SIGKILL'));
  await waitReady(port, child);
  t.equal((await httpRequest(port, 'GET', '/metrics')).status, 404, 'not on the main port');
  const scraped = await httpRequest(metricsPort, 'GET', '/metrics');
  t.equal(scraped.status, 200);
  t.equal(sample(scraped.body, `model_info{${id}}`), 1);
  t.equal((await httpRequest(metricsPort, 'GET', '/healthz')).status, 200);
  child.kill('SIGTERM');
  const result = await exit;
  t.equal(result.code, 0, result.stderr);
  await waitRefused(port);
  await waitRefused(metricsPort);
});

t.test('serve exits 1 when the metrics port is taken, instead of serving on the main port alone', async (t) => {
  const taken = await testApp(t);
  await taken.app.listen({ port: 0, host: '127.0.0.1' });
  const metricsPort = (taken.app.server.address() as { port: number }).port;
  const port = await freePort();
  const result = await finished(spawnCli(['serve', '--port', String(port), '--metrics-port', String(metricsPort), '--csv', '', '--log-level', 'warn']));
  t.equal(result.code, 1);
  t.match(result.stderr, /EADDRINUSE/);
  await waitRefused(port);
});
