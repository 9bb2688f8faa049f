// modelwatch writes its families' exposition itself (prom-client's per-sample formatting was most
// of a wide model's scrape): every line must be the one prom-client's own Registry writes.
import { join } from 'node:path';
import { Registry } from 'prom-client';
import t from 'tap';
import { familyBuilder } from '../src/monitor/metrics.js';
import { openMetricsFamilies, withoutNaN } from '../src/monitor/openmetrics.js';
import { batchRowIds, predict, tempDir, testApp, trainRows, trainTargets } from './helpers/app.js';
import { postJson } from './helpers/sidecar.js';
import { versionDir } from './helpers/rollout.js';

/**
 * Each family's text from modelwatch's writer and from a plain prom-client Registry holding the
 * same family, less its NaN samples (the writer leaves them out, as the route did prom-client's).
 */
async function both(metric: { name: string; text(): string }) {
  const plain = new Registry();
  plain.registerMetric(metric as never);
  return { ours: metric.text(), promClient: withoutNaN(`${await plain.getSingleMetricAsString(metric.name)}\n`).slice(0, -1) };
}

t.test('label values that need escaping or are not ASCII, NaN, infinities and the integers written digit by digit: the lines prom-client writes, NaN left out', async (t) => {
  const { families, register, enumCounter, histogram } = familyBuilder({ model: 'a "quoted" \\ back\nslash', version: 'v1 größe 温度' });
  const count = enumCounter('x_total', 'help with \\ and\na newline', 'reason', ['one', 'two "2"']);
  count('one');
  register('x_gauge', 'values', 'gauge', () => [Number.NaN, Infinity, -Infinity, 1e-7, -0.5, 12345678901234567890].map((value, i) => ({ sharedLabels: { i }, value })));
  // Around every power of ten the digit writer crosses, and the bound where `${v}` takes over.
  const integers = [0, -0, 1, 9, 10, 11, 99, 100, 101, 65535, 123456789, 2 ** 31, 2 ** 32 + 1, 999999999999999, 1e15, 1e15 + 1, 2 ** 53, 1e21, -1, -10, 0.5, 9.999999999999999e14];
  register('x_count_total', 'integers', 'counter', () => integers.map((value, i) => ({ sharedLabels: { i }, value })));
  histogram('x_seconds', 'a histogram', { bounds: [0.1, 1], counts: Float64Array.from([1, 2, 3]), sum: 4.5, count: 6 });
  for (const metric of families.values()) {
    const { ours, promClient } = await both(metric);
    t.equal(ours, promClient, metric.name);
  }
});

t.test('every family of a shadow rollout with labels: the lines prom-client writes', async (t) => {
  const candidateDir = await versionDir(join(await tempDir(t), 'v2'), '2', { scale: 1.3 });
  const { app } = await testApp(t, ['--candidate-dir', candidateDir, '--rollout', 'shadow']);
  const ids = batchRowIds((await predict(app, { instances: trainRows.slice(0, 20) })).json());
  await app.rollout.settled();
  await postJson(app, '/feedback', { labels: ids.map((id: string, r: number) => ({ id, actual: trainTargets[r]! })) });
  const ours = app.rollout.registry.registry.getMetricsAsArray().filter((m) => m.name.startsWith('model_'));
  t.ok(ours.length >= 36, `${ours.length} model_ families`);
  for (const metric of ours) {
    const { ours: text, promClient } = await both(metric as unknown as { name: string; text(): string });
    t.equal(text, promClient, metric.name);
    const family = metric as unknown as { text(openMetrics: boolean): string };
    t.equal(family.text(true), openMetricsFamilies(text), `${metric.name} in OpenMetrics: its text-format lines, converted`);
  }
});
