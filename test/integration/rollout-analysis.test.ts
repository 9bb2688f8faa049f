// The Argo Rollouts AnalysisTemplate's queries (deploy/rollouts/, as shipped), run by a real
// Prometheus with the shipped rules that scrapes two real servers in shadow mode, with labels
// for every row: one whose candidate is the same model (every check passes), one whose
// candidate predicts 1.3 times the primary (the PSI, diff and MAE checks fail; errors and
// latency pass). Each query's result is judged by its template's own successCondition.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadAll } from 'js-yaml';
import t from 'tap';
import { batchRowIds, repoRoot, tempDir, trainRows, trainTargets } from '../helpers/app.js';
import { versionDir } from '../helpers/rollout.js';
import { finished, freePort, spawnCli, waitReady } from '../helpers/cli.js';
import { post, startPrometheus, startTraffic, waitFor } from './harness.js';

interface AnalysisTemplate {
  metadata: { name: string };
  spec: { metrics: { name: string; successCondition: string; provider: { prometheus: { query: string } } }[] };
}
const templates = loadAll(await readFile(join(repoRoot, 'deploy/rollouts/argo-analysis-templates.yaml'), 'utf8')) as AnalysisTemplate[];
const regression = templates.find((tpl) => tpl.metadata.name === 'modelwatch-candidate-regression')!;

/** `result[0] <= 0.25`: the only two forms the templates use. */
function passes(condition: string, value: number): boolean {
  const m = /^result\[0\] (<=|>=) (\S+)$/.exec(condition);
  if (!m) throw new Error(`unexpected successCondition ${condition}`);
  return m[1] === '<=' ? value <= Number(m[2]) : value >= Number(m[2]);
}

/** A window of 20 s holds about 400 requests per server: its p99 is not one slow request. */
const WINDOW = '20s';

t.test('the rollout analysis passes a candidate that is the same model and fails one 30% higher on PSI and diff', { timeout: 150_000 }, async (t) => {
  const dir = await tempDir(t);
  // Distinct versions per server, so their series never sum together in the fleet-wide rules.
  const cases = [
    { name: 'same model', primary: '1', candidate: '2', scale: undefined, failing: [] as string[] },
    { name: '1.3 x the primary', primary: '10', candidate: '11', scale: 1.3, failing: ['prediction-psi', 'prediction-diff-ratio', 'mae-ratio'] },
  ];
  // Servers of their own, as in production: the latency check compares p99s of microseconds,
  // which the test's own work (traffic, Prometheus answers, garbage collection) on a shared
  // event loop would swamp.
  const targets: { address: string }[] = [];
  for (const c of cases) {
    const primaryDir = await versionDir(join(dir, `v${c.primary}`), c.primary);
    const candidateDir = await versionDir(join(dir, `v${c.candidate}`), c.candidate, { scale: c.scale });
    const port = await freePort();
    const server = spawnCli(['serve', '--port', String(port), '--model-dir', primaryDir, '--candidate-dir', candidateDir, '--rollout', 'shadow', '--csv', '', '--max-event-loop-delay-ms', '0', '--log-level', 'warn']);
    const exited = finished(server, 10 * 60_000);
    t.teardown(async () => {
      server.kill('SIGTERM');
      await exited;
    });
    await waitReady(port, server);
    targets.push({ address: `127.0.0.1:${port}` });
  }
  const prometheus = await startPrometheus(t, { targets: targets.map((target) => target.address) });
  let next = 0;
  const traffic = startTraffic(
    t,
    async () => {
      // Four clients at once per server: each version's predictions overlap other requests'
      // work on the event loop alike (one client waiting on each answer would leave the primary
      // a quiet loop and the candidate, which predicts after the answer, a busy one).
      const client = async (target: { address: string }) => {
        const rows = Array.from({ length: 16 }, () => next++ % trainRows.length);
        const answer = await post(target, '/predict', { instances: rows.map((i) => trainRows[i]!) });
        if (answer.status !== 200) throw new Error(`/predict answered ${answer.status}: ${JSON.stringify(answer.body)}`);
        const ids = batchRowIds(answer.body as { id: string; predictions: number[] });
        const labels = await post(target, '/feedback', { labels: ids.map((id, j) => ({ id, actual: trainTargets[rows[j]!]! })) });
        if (labels.status !== 200) throw new Error(`/feedback answered ${labels.status}`);
      };
      await Promise.all(targets.flatMap((target) => [client(target), client(target), client(target), client(target)]));
    },
    { intervalMs: 200, maxMs: 120_000 },
  );

  const query = (q: string, c: (typeof cases)[number]) =>
    q.replaceAll('{{args.model}}', 'diabetes').replaceAll('{{args.candidate-version}}', c.candidate).replaceAll('{{args.primary-version}}', c.primary).replaceAll('{{args.window}}', WINDOW);
  const evaluate = async (c: (typeof cases)[number]) => {
    const results = new Map<string, number>();
    for (const metric of regression.spec.metrics) {
      const samples = await prometheus.query(query(metric.provider.prometheus.query, c));
      if (samples.length === 1) results.set(metric.name, Number(samples[0]!.value![1]));
    }
    return results;
  };
  // 30 s of traffic: more than the 20 s window, and half the rules' hour (60 s here).
  const start = Date.now();
  let seen = '';
  await waitFor(
    'every analysis query to return one value, after 30 s of traffic',
    async () => {
      const all = await Promise.all(cases.map(evaluate));
      seen = all.map((r) => [...r.keys()].join(' ')).join(' | ');
      return all.every((r) => r.size === regression.spec.metrics.length) && Date.now() - start > 30_000 ? all : undefined;
    },
    { timeoutMs: 90_000, intervalMs: 2000, describe: () => seen, signal: traffic.signal },
  );

  for (const c of cases) {
    const results = await evaluate(c);
    const failing = regression.spec.metrics.filter((m) => !passes(m.successCondition, results.get(m.name)!)).map((m) => m.name);
    t.same(failing, c.failing, `${c.name}: ${[...results].map(([name, value]) => `${name} ${value.toFixed(4)}`).join(', ')}`);
  }
  await traffic.stop();
});
