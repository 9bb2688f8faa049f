// Every query of the Grafana dashboard, run as Grafana would run it against a real Prometheus
// that scrapes two modelwatch replicas after simulated traffic: the variables resolved by their
// own label_values() queries and substituted, range queries for time series, instant queries
// where the target asks for them, a repeated panel once per value of its variable. A query fails
// when it errors, returns no series, returns only zeros or NaN (an `or vector(0)` fallback does
// not count as data), or returns series without a label its legend shows. The static checks
// (descriptions, units, $__rate_interval, valid PromQL) are test/alerts/dashboard-static.test.ts.
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { featureNames, repoRoot, trainRows, trainTargets } from '../helpers/app.js';
import { JOB, post, startApps, startPrometheus, startTraffic, waitFor, type Prometheus, type Sample, type Target } from './harness.js';

interface Query {
  refId: string;
  expr: string;
  instant?: boolean;
  legendFormat?: string;
}
interface Panel {
  type: string;
  title: string;
  repeat?: string;
  targets?: Query[];
  panels?: Panel[];
}
interface Variable {
  name: string;
  type: string;
  query: string | { query: string };
  allValue?: string;
}

const dashboard = JSON.parse(await readFile(join(repoRoot, 'grafana', 'dashboards', 'modelwatch.json'), 'utf8')) as {
  panels: Panel[];
  templating: { list: Variable[] };
};
/** Top-level panels plus those nested in collapsed rows. */
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.type !== 'row');
const queryVariables = dashboard.templating.list.filter((v) => v.type === 'query');

// Predictions above 250 count as outliers: about 5% of the training rows' predictions are, so
// the outlier panels get data from real inputs. The feedback store keeps 100 predictions, fewer
// than a replica gets in two ticks, so it evicts by capacity and the eviction panel has data.
const FLAGS = ['--prediction-max', '250', '--feedback-max-entries', '100'];
const BATCH = 25;
// Drifted rows: every feature +60%, which also puts part of every feature's values outside its
// training range, so each feature's panels have data whichever feature is selected.
const drift = (row: number[]) => row.map((v) => v * 1.6);

/** A variable value as Grafana writes it into a PromQL regex matcher (its prometheusRegularEscape). */
const escapeRegex = (value: string) => value.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');

/** Replaces $name, ${name}, ${name:format} and [[name]]; an unknown variable is left for the caller to catch. */
function substitute(expr: string, values: ReadonlyMap<string, string>): string {
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]/g, (whole, a?: string, b?: string, c?: string) => values.get((a ?? b ?? c)!) ?? whole);
}

interface Selection {
  name: string;
  /** Variable name -> text substituted for it, the built-in interval variables included. */
  values: Map<string, string>;
  /** Variable name -> the values its label_values() query lists (for repeated panels). */
  options: Map<string, string[]>;
}

/**
 * Resolves the query variables in dashboard order, each with the ones before it substituted, as
 * Grafana does: `all` selects "All" everywhere (the dashboard's default), `first` the first value.
 */
async function select(t: Test, prometheus: Prometheus, mode: 'all' | 'first', builtins: Record<string, string>): Promise<Selection> {
  const values = new Map(Object.entries(builtins));
  const options = new Map<string, string[]>();
  for (const v of queryVariables) {
    const query = typeof v.query === 'string' ? v.query : v.query.query;
    const parsed = /^label_values\((.+),\s*(\w+)\)$/.exec(query);
    if (!parsed) throw new Error(`variable $${v.name}: unsupported query ${query}`);
    const listed = await prometheus.labelValues(parsed[2]!, substitute(parsed[1]!, values));
    t.ok(listed.length > 0, `variable $${v.name} lists values: ${listed.join(', ')}`);
    options.set(v.name, listed);
    const all = v.allValue ?? `(${listed.map(escapeRegex).join('|')})`;
    values.set(v.name, mode === 'all' ? all : escapeRegex(listed[0] ?? ''));
  }
  return { name: mode === 'all' ? 'All selected' : 'first value of each variable selected', values, options };
}

/** What is wrong with a query's result, or undefined when it has data. */
function problem(result: Sample[], legendFormat: string | undefined): string | undefined {
  if (result.length === 0) return 'no series';
  const numbers = result.flatMap((s) => s.values ?? (s.value ? [s.value] : [])).map(([, v]) => Number(v));
  if (!numbers.some((v) => Number.isFinite(v) && v !== 0)) return `only zero or NaN values (${numbers.length} points)`;
  for (const [, label] of (legendFormat ?? '').matchAll(/\{\{\s*(\w+)\s*\}\}/g)) {
    const without = result.find((s) => !(label! in s.metric));
    if (without) return `legend shows {{${label}}} but series ${JSON.stringify(without.metric)} has no ${label} label`;
  }
  return undefined;
}

t.test('every dashboard query returns data after simulated traffic', { timeout: 120_000 }, async (t) => {
  const replicas = await startApps(t, 2, FLAGS);
  let next = 0;
  /** Indices into trainRows and trainTargets. */
  const batch = () => Array.from({ length: BATCH }, () => next++ % trainRows.length);
  const send = async (target: Target, path: string, body: unknown, status: number) => {
    const r = await post(target, path, body);
    if (r.status !== status) throw new Error(`POST ${path} answered ${r.status}, expected ${status}: ${JSON.stringify(r.body)}`);
    return r.body;
  };
  const start = Math.floor(Date.now() / 1000);
  // Each replica gets per tick: normal rows, then their true targets as labels; drifted rows,
  // unlabelled (their truth is unknown); one invalid request (a row one value short); and one
  // rejected label list (an empty one).
  const traffic = startTraffic(
    t,
    async () => {
      for (const replica of replicas) {
        const normal = batch();
        const { ids } = (await send(replica, '/predict', { instances: normal.map((i) => trainRows[i]!) }, 200)) as { ids: string[] };
        const labels = ids.map((id, j) => ({ id, actual: trainTargets[normal[j]!]! }));
        const { outcomes } = (await send(replica, '/feedback', { labels }, 200)) as { outcomes: string[] };
        if (outcomes.some((o) => o !== 'matched')) throw new Error(`labels sent right after their predictions were answered ${outcomes.join(', ')}`);
        await send(replica, '/predict', { instances: batch().map((i) => drift(trainRows[i]!)) }, 200);
        await send(replica, '/predict', { features: trainRows[0]!.slice(0, featureNames.length - 1) }, 400);
        await send(replica, '/feedback', { labels: [] }, 400);
      }
    },
    { intervalMs: 250, maxMs: 110_000 },
  );
  const prometheus = await startPrometheus(t, { targets: replicas.map((r) => r.address) });

  // The firing-alerts panels have data only while an alert fires; this traffic fires several
  // (invalid-input ratio, feature drift, out-of-range values, outliers). The queries end at the
  // instant an alert was seen firing, so those panels include it.
  let end = 0;
  const firing = await waitFor(
    'an alert to fire',
    async () => {
      end = Math.floor(Date.now() / 1000);
      const alerts = await prometheus.query(`ALERTS{alertstate="firing", job="${JOB}"}`, end);
      return alerts.length > 0 ? alerts : undefined;
    },
    { timeoutMs: 60_000, signal: traffic.signal },
  );
  t.ok(firing.length > 0, `firing: ${[...new Set(firing.map((a) => a.metric.alertname))].join(', ')}`);

  // Grafana's step ($__interval) is never below the datasource's scrape interval (timeInterval),
  // and $__rate_interval is max($__interval + scrape interval, 4 * scrape interval).
  const step = prometheus.intervalSeconds;
  const builtins = {
    __interval: `${step}s`,
    __rate_interval: `${Math.max(step + prometheus.intervalSeconds, 4 * prometheus.intervalSeconds)}s`,
    __range: `${end - start}s`,
  };

  let checked = 0;
  for (const mode of ['all', 'first'] as const) {
    const selection = await select(t, prometheus, mode, builtins);
    for (const panel of panels) {
      // A repeated panel is drawn once per selected value, each copy with the variable set to its value.
      const repeatOver = panel.repeat && mode === 'all' ? selection.options.get(panel.repeat) : undefined;
      const copies = repeatOver ? repeatOver.map((value) => new Map([...selection.values, [panel.repeat!, escapeRegex(value)]])) : [selection.values];
      for (const values of copies) {
        for (const target of panel.targets ?? []) {
          const expr = substitute(target.expr, values);
          const title = substitute(panel.title, values);
          const where = `panel "${title}" query ${target.refId} (${selection.name})`;
          if (/\$|\[\[/.test(expr)) {
            t.fail(`${where}: unsubstituted variable in ${expr}`);
            continue;
          }
          let trouble: string | undefined;
          try {
            const result = target.instant ? await prometheus.query(expr, end) : await prometheus.queryRange(expr, start, end, step);
            trouble = problem(result, target.legendFormat);
          } catch (err) {
            trouble = `query failed: ${(err as Error).message}`;
          }
          t.notOk(trouble, trouble ? `${where}: ${trouble}\n  ${expr}` : `${where} returns data`);
          checked++;
        }
      }
    }
  }
  t.ok(checked >= 2 * panels.flatMap((p) => p.targets ?? []).length, `${checked} queries checked`);
  await traffic.stop();
});
