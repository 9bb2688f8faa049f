// The promise of the alert rules, end to end: sustained drift sent through POST /predict is
// scraped by a real Prometheus running the shipped rules (durations scaled down, expressions as
// shipped), routed by a real Alertmanager on the shipped alertmanager.yml, and arrives at
// PagerDuty (a fake Events API v2 endpoint here) as one `trigger` with the alert's severity and
// summary, then as a `resolve` with the same dedup_key once the drift is over.
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { load } from 'js-yaml';
import t, { type Test } from 'tap';
import { diabetesBaseline, featureNames, repoRoot, trainRows } from '../helpers/app.js';
import { durationMs, post, startAlertmanager, startApps, startPrometheus, startTraffic, waitFor } from './harness.js';

interface PagerDutyEvent {
  routing_key: string;
  event_action: 'trigger' | 'acknowledge' | 'resolve';
  dedup_key: string;
  payload: { summary: string; severity: string; class?: string; component?: string; custom_details?: Record<string, string> };
  links?: { href: string; text: string }[];
}
interface Received {
  /** Date.now() when the event arrived. */
  at: number;
  event: PagerDutyEvent;
}

/** A PagerDuty Events API v2 endpoint on 127.0.0.1 that accepts and records every event. */
async function fakePagerDuty(t: Test): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let event: PagerDutyEvent;
      try {
        event = JSON.parse(Buffer.concat(chunks).toString()) as PagerDutyEvent;
      } catch {
        res.writeHead(400, { 'content-type': 'application/json' }).end('{"status":"invalid event","message":"Event object is invalid"}');
        return;
      }
      received.push({ at: Date.now(), event });
      // What PagerDuty answers to an accepted event; Alertmanager retries anything else.
      res
        .writeHead(202, { 'content-type': 'application/json' })
        .end(JSON.stringify({ status: 'success', message: 'Event processed', dedup_key: event.dedup_key }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  });
  const { port } = server.address() as { port: number };
  return { url: `http://127.0.0.1:${port}/v2/enqueue`, received };
}

interface AlertRule {
  alert?: string;
  for?: string;
  keep_firing_for?: string;
  labels?: Record<string, string>;
}

/** The shipped rule for `alert` at `severity`. */
async function shippedAlert(alert: string, severity: string): Promise<AlertRule> {
  const file = load(await readFile(join(repoRoot, 'prometheus', 'rules', 'modelwatch.rules.yml'), 'utf8')) as { groups: { rules: AlertRule[] }[] };
  const rule = file.groups.flatMap((g) => g.rules).find((r) => r.alert === alert && r.labels?.severity === severity);
  if (!rule?.for || !rule.keep_firing_for) throw new Error(`no ${severity} ${alert} rule with for and keep_firing_for in modelwatch.rules.yml`);
  return rule;
}

const ALERT = 'ModelFeatureMeanDrift';
const ROUTING_KEY = 'e2e0routing0key0000000000000000a';
// One drifted feature, so the Alertmanager group {alertname, model} holds one alert and PagerDuty's
// summary is that alert's summary annotation (with every feature drifted the group shares no
// summary and the receiver sends "ModelFeatureMeanDrift on model diabetes: 10 firing").
const FEATURE = 'bmi';
const DRIFT = 1.6;
// Every request carries exactly the default window of 1000 rows, so each one replaces the whole
// window: the rolling means, and with them the alert's value and summary, are identical at
// every scrape, and the summary PagerDuty gets can be compared with Prometheus's exactly.
const WINDOW = 1000;
const column = featureNames.indexOf(FEATURE);
const normalRows = Array.from({ length: WINDOW }, (_, i) => trainRows[i % trainRows.length]!);
const driftedRows = normalRows.map((row) => row.map((v, i) => (i === column ? v * DRIFT : v)));
const baselineMean = diabetesBaseline.features[column]!.mean;
const expectedDeviation = driftedRows.reduce((sum, row) => sum + row[column]!, 0) / WINDOW / baselineMean - 1;

t.test('sustained drift through /predict pages PagerDuty, and the end of it resolves the page', { timeout: 180_000 }, async (t) => {
  t.ok(expectedDeviation > 0.5, `the drift (${(expectedDeviation * 100).toFixed(1)}%) is above the critical threshold of 50%`);

  const pagerduty = await fakePagerDuty(t);
  const [target] = await startApps(t, 1);
  const alertmanager = await startAlertmanager(t, { pagerdutyUrl: pagerduty.url, routingKey: ROUTING_KEY });
  const prometheus = await startPrometheus(t, { targets: [target!.address], alertmanagers: [alertmanager] });
  const critical = await shippedAlert(ALERT, 'critical');
  const forMs = durationMs(critical.for!) / prometheus.timeScale;
  const keepFiringMs = durationMs(critical.keep_firing_for!) / prometheus.timeScale;

  let rows = driftedRows;
  const traffic = startTraffic(
    t,
    async () => {
      const r = await post(target!, '/predict', { instances: rows });
      if (r.status !== 200) throw new Error(`POST /predict answered ${r.status}: ${JSON.stringify(r.body)}`);
    },
    { intervalMs: 500, maxMs: 170_000 },
  );
  const driftStart = Date.now();
  const events = () => pagerduty.received.map(({ event: e }) => `${e.event_action} ${e.payload.class} ${e.payload.severity}: ${e.payload.summary}`).join('\n') || 'no events';
  const ofAlert = (action: string) => pagerduty.received.find(({ event: e }) => e.event_action === action && e.payload.class === ALERT);

  const trigger = await waitFor(`a PagerDuty trigger for ${ALERT}`, () => ofAlert('trigger'), { timeoutMs: 60_000, describe: events, signal: traffic.signal });
  t.ok(trigger.at - driftStart >= forMs, `paged ${trigger.at - driftStart}ms after the drift began, not before the rule's for (${forMs}ms)`);
  const firing = (await prometheus.alerts()).filter((a) => a.labels.alertname === ALERT && a.labels.feature === FEATURE && a.state === 'firing');
  const firingCritical = firing.find((a) => a.labels.severity === 'critical');
  t.ok(firingCritical, `Prometheus has the critical ${ALERT} for ${FEATURE} firing`);
  t.ok(
    firing.some((a) => a.labels.severity === 'warning'),
    'and its warning twin too, so the absence of a warning page below is the inhibition at work',
  );

  const { event } = trigger;
  t.equal(event.routing_key, ROUTING_KEY, 'the routing key read from routing_key_file');
  t.equal(event.payload.severity, 'critical', 'severity passed through');
  t.equal(event.payload.summary, firingCritical?.annotations.summary, 'summary is the alert summary annotation as Prometheus rendered it');
  const summary = new RegExp(`^Feature ${FEATURE} of model diabetes drifted ([\\d.]+)% from training$`).exec(event.payload.summary);
  t.ok(summary, `summary names the feature and the model: ${event.payload.summary}`);
  t.ok(Math.abs(Number(summary?.[1]) - expectedDeviation * 100) < 0.01, `summary carries the deviation, ${(expectedDeviation * 100).toFixed(2)}%`);
  t.equal(event.payload.component, 'diabetes', 'component is the model');
  t.equal(event.payload.custom_details?.description, firingCritical?.annotations.description, 'details carry the alert description');
  t.same(event.links?.map((l) => l.href), [firingCritical?.annotations.runbook_url], 'links to the runbook');
  t.ok(event.dedup_key, 'carries a dedup_key');

  rows = normalRows;
  const driftEnd = Date.now();
  const resolve = await waitFor(`a PagerDuty resolve for ${ALERT}`, () => ofAlert('resolve'), { timeoutMs: 60_000, describe: events, signal: traffic.signal });
  t.ok(resolve.at - driftEnd >= keepFiringMs, `resolved ${resolve.at - driftEnd}ms after the drift ended, not before keep_firing_for (${keepFiringMs}ms)`);
  t.equal(resolve.event.dedup_key, event.dedup_key, 'the resolve closes the incident the trigger opened (same dedup_key)');
  t.equal(resolve.event.routing_key, ROUTING_KEY);

  const alertEvents = pagerduty.received.filter(({ event: e }) => e.payload.class === ALERT).map(({ event: e }) => `${e.event_action} ${e.payload.severity}`);
  t.notOk(alertEvents.includes('trigger warning'), `the warning twin is inhibited by the critical alert: ${alertEvents.join(', ')}`);
  await traffic.stop();
});
