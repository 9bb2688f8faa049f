// Every query of the Grafana dashboard, run as Grafana would run it against a real Prometheus
// that scrapes two modelwatch replicas of the diabetes regression, a third one in shadow mode
// with a candidate version (and a hot reload of it), one of the iris classifier and one of a
// binary classifier, after simulated traffic: the variables resolved by their
// own label_values() queries and substituted, range queries for time series, instant queries
// where the target asks for them, a repeated panel once per value of its variable. A query fails
// when it errors, returns no series, returns only zeros or NaN (an `or vector(0)` fallback does
// not count as data), or returns series without a label its legend shows. The static checks
// (descriptions, units, $__rate_interval, valid PromQL) are test/alerts/dashboard-static.test.ts.
// The Classification row is also checked for its values: each of its queries, for the iris
// replica (and the binary one for the positive-class panel), equals what the test computes from
// the answers it got and the labels it sent.
import { copyFile, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { ClassificationBaseline } from '../../src/model/baseline.js';
import { buildBaseline } from '../../src/model/build-baseline.js';
import { CONFIDENCE_BUCKETS, PROBABILITY_BUCKETS } from '../../src/monitor/classification.js';
import { psi } from '../../src/monitor/psi.js';
import { batchRowIds, featureNames, repoRoot, tempDir, trainRows, trainTargets } from '../helpers/app.js';
import { escapeRegex } from '../helpers/grafana.js';
import { versionDir } from '../helpers/rollout.js';
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
/** Top-level panels plus those nested in collapsed rows, each with the title of its row. */
const panels: (Panel & { row: string })[] = [];
{
  let row = '';
  for (const p of dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])])) {
    if (p.type === 'row') row = p.title;
    else panels.push({ ...p, row });
  }
}
const CLASSIFICATION_ROW = 'Classification';
/** Its panels compare a candidate with its primary: only a replica serving both has data for them. */
const ROLLOUT_ROW = 'Rollout: candidate vs primary';
/** Families only a classifier exports. */
const CLASSIFIER_ONLY = /model_feedback_class|model_prediction_class_|model_prediction_confidence|model_prediction_probability/;
/** Families only a regression exports: their panels are empty for a classifier. */
const REGRESSION_ONLY = /model_prediction_(value_bucket|mean|baseline_mean|abs_error|squared_error|baseline_abs_error_mean)/;
/** Only a binary classifier has a positive class. */
const BINARY_ONLY = /model_prediction_probability_bucket/;
const queriesOf = (p: Panel) => (p.targets ?? []).map((q) => q.expr);
const queryVariables = dashboard.templating.list.filter((v) => v.type === 'query');

// Predictions above 250 count as outliers: about 5% of the training rows' predictions are, so
// the outlier panels get data from real inputs. The feedback store keeps 100 predictions, fewer
// than a replica gets in two ticks, so it evicts by capacity and the eviction panel has data.
const FLAGS = ['--prediction-max', '250', '--feedback-max-entries', '100'];
const BATCH = 25;
// Drifted rows: every feature +60%, which also puts part of every feature's values outside its
// training range, so each feature's panels have data whichever feature is selected.
const drift = (row: number[]) => row.map((v) => v * 1.6);


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
 * Grafana does: `all` selects "All" everywhere (the dashboard's default), `first` the first value
 * (with `allVersions`, every version of the instance).
 */
async function select(t: Test, prometheus: Prometheus, mode: 'all' | 'first', builtins: Record<string, string>, instance?: string, allVersions = false): Promise<Selection> {
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
    // As a user picks one replica, and the first value of every other variable.
    const picked = v.name === 'instance' && instance !== undefined ? instance : listed[0];
    if (v.name === 'instance' && instance !== undefined) t.ok(listed.includes(instance), `$instance lists ${instance}`);
    values.set(v.name, mode === 'all' || (allVersions && v.name === 'version') ? all : escapeRegex(picked ?? ''));
  }
  const name = mode === 'all' ? 'All selected' : `first value of each variable selected${instance ? `, instance ${instance}` : ''}${allVersions ? ', all versions' : ''}`;
  return { name, values, options };
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

/** POSTs to a replica; throws unless it answers `status`, which ends the traffic loop that sent it. */
async function send(target: Target, path: string, body: unknown, status: number): Promise<unknown> {
  const r = await post(target, path, body);
  if (r.status !== status) throw new Error(`POST ${path} to ${target.address} answered ${r.status}, expected ${status}: ${JSON.stringify(r.body)}`);
  return r.body;
}

/** Labels sent right after their predictions were answered must all match. */
async function sendLabels(target: Target, labels: { id: string; actual: number | string }[]): Promise<void> {
  const { outcomes } = (await send(target, '/feedback', { labels }, 200)) as { outcomes: string[] };
  if (outcomes.some((o) => o !== 'matched')) throw new Error(`labels sent right after their predictions were answered ${outcomes.join(', ')}`);
}

// ------------------------------------------------------------------------ classifiers

interface LabelledRow {
  features: number[];
  /** The true class name. */
  actual: string;
}
/** The rows of a CSV whose last column is the class (a name, or an index of `classes`). */
async function labelledRows(file: string, classes: readonly string[]): Promise<LabelledRow[]> {
  const lines = (await readFile(file, 'utf8')).trim().split('\n').slice(1);
  return lines.map((line) => {
    const cells = line.split(',');
    const last = cells.pop()!;
    return { features: cells.map(Number), actual: classes.includes(last) ? last : classes[Number(last)]! };
  });
}

/** A classifier replica, its baseline and its rows. */
interface Classifier {
  target: Target;
  baseline: ClassificationBaseline;
  rows: LabelledRow[];
}

/** A replica of the model in `modelDir`, with the labelled rows of `csvFiles` to send it. */
async function startClassifier(t: Test, modelDir: string, csvFiles: string[]): Promise<Classifier> {
  const [target] = await startApps(t, 1, ['--model-dir', modelDir, '--feedback-max-entries', '100']);
  const baseline = JSON.parse(await readFile(join(modelDir, 'baseline.json'), 'utf8')) as ClassificationBaseline;
  const rows = (await Promise.all(csvFiles.map((file) => labelledRows(file, baseline.classes)))).flat();
  return { target: target!, baseline, rows };
}

/** The binary fixture with a baseline made here, as a user would with `modelwatch baseline`. */
async function binaryModelDir(t: Test): Promise<string> {
  const dir = await tempDir(t);
  const data = join(repoRoot, 'models', 'fixtures', 'binary.csv');
  await copyFile(join(repoRoot, 'models', 'fixtures', 'binary-probabilities.onnx'), join(dir, 'model.onnx'));
  const baseline = await buildBaseline({ data, modelFile: join(dir, 'model.onnx'), target: 'target', evalData: data, name: 'binary' });
  await writeFile(join(dir, 'baseline.json'), JSON.stringify(baseline));
  return dir;
}

/** What a classifier was sent and answered: the counts its metrics must show. */
interface Sent {
  /** Predicted class per row. */
  predicted: string[];
  /** Top-class probability per row whose probabilities are a distribution. */
  confidence: number[];
  /** The second class's probability per such row (binary models). */
  positive: number[];
  labels: { actual: string; predicted: string }[];
}

/** At most --feedback-max-entries (100) predictions wait for their labels, so none is evicted first. */
const BURST_BATCH = 50;
/** A recording this long after a burst holds it in every scrape since; the rules' hour (60 s) still holds the scrapes before it. */
const SETTLE_SECONDS = 5;

/**
 * One burst per classifier: every row as is, then every row with its features +60% (out of
 * the training range, answered with other classes and less confidence), each batch labelled
 * with its true classes right after its answers; one row observed with probabilities that sum
 * to 1.8 (an invalid_probabilities outlier, counted in its class only); one invalid request
 * and one rejected label list, so that every panel of a classifier has data.
 */
async function burst({ target, baseline, rows }: Classifier): Promise<Sent> {
  const { classes } = baseline;
  const sent: Sent = { predicted: [], confidence: [], positive: [], labels: [] };
  const inputs = [...rows, ...rows.map((r) => ({ ...r, features: r.features.map((v) => v * 1.6) }))];
  for (let i = 0; i < inputs.length; i += BURST_BATCH) {
    const batch = inputs.slice(i, i + BURST_BATCH);
    const answer = (await send(target, '/predict', { instances: batch.map((r) => r.features) }, 200)) as {
      id: string;
      predictions: string[];
      probabilities: Record<string, number>[];
    };
    answer.predictions.forEach((predicted, j) => {
      const p = classes.map((c) => answer.probabilities[j]![c]!);
      sent.predicted.push(predicted);
      sent.confidence.push(Math.max(...p));
      sent.positive.push(p[1]!);
      sent.labels.push({ actual: batch[j]!.actual, predicted });
    });
    await sendLabels(target, batchRowIds(answer).map((id, j) => ({ id, actual: batch[j]!.actual })));
  }
  const invalid = Object.fromEntries(classes.map((c, i) => [c, i === 0 ? 0.9 : 0.9 / (classes.length - 1)]));
  await send(target, '/observe', { features: rows[0]!.features, prediction: classes[0], probabilities: invalid }, 200);
  sent.predicted.push(classes[0]!);
  await send(target, '/predict', { features: rows[0]!.features.slice(1) }, 400);
  await send(target, '/feedback', { labels: [] }, 400);
  return sent;
}

/** Expected value per series of one query, the series keyed by `key`. */
interface Expectation {
  key: (metric: Record<string, string>) => string;
  values: Map<string, number>;
  /** Histogram rates: compared as shares of the le="+Inf" series (rate() scales them alike). */
  shares?: boolean;
}

const byClass = (m: Record<string, string>) => m.class ?? '';
const single = () => '';
const byLe = (m: Record<string, string>) => m.le ?? '';
const one = (value: number) => new Map([['', value]]);

/** Share of `values` at or below each bucket bound, keyed as Prometheus writes le. */
function cumulativeShares(values: number[], bounds: number[]): Map<string, number> {
  const shares = new Map(bounds.map((le) => [String(le), values.filter((v) => v <= le).length / values.length]));
  return shares.set('+Inf', 1);
}

/**
 * The value of every query of the Classification row for one classifier, from what it was sent.
 * `recordedRows` is the fleet's row count over the hour as recorded: increase() extrapolates
 * every counter of one target by the same factor, which ratios cancel and PSI does not.
 */
function classificationExpectations(c: Classifier, sent: Sent, recordedRows: number): Map<string, Expectation> {
  const { classes, prediction, accuracy } = c.baseline;
  const n = sent.predicted.length;
  const counts = classes.map((cls) => sent.predicted.filter((p) => p === cls).length);
  const shares = new Map(classes.map((cls, i) => [cls, counts[i]! / n]));
  const factor = recordedRows / n;
  const cell = (actual: string | undefined, predicted: string | undefined) =>
    sent.labels.filter((l) => (actual === undefined || l.actual === actual) && (predicted === undefined || l.predicted === predicted)).length;
  const ratios = (denominator: (cls: string) => number) =>
    new Map(classes.filter((cls) => denominator(cls) > 0).map((cls) => [cls, cell(cls, cls) / denominator(cls)]));
  const correct = classes.reduce((sum, cls) => sum + cell(cls, cls), 0);
  const low = sent.confidence.filter((v) => v <= 0.6).length / sent.confidence.length;
  const lowBaseline = prediction.low_confidence_share!;
  return new Map<string, Expectation>([
    ['Predicted class shares vs training, fleet-wide (last hour) A', { key: byClass, values: shares }],
    ['Predicted class shares vs training, fleet-wide (last hour) B', { key: byClass, values: new Map(classes.map((cls, i) => [cls, prediction.class_shares[i]!])) }],
    ['Class PSI: fleet-wide (last hour) and per replica (rolling window) A', { key: single, values: one(psi(counts.map((x) => x * factor), n * factor, prediction.class_shares)) }],
    // The rolling window (--window 1000) holds every row sent.
    ['Class PSI: fleet-wide (last hour) and per replica (rolling window) B', { key: single, values: one(psi(counts, n, prediction.class_shares)) }],
    ['Confidence distribution A', { key: byLe, values: cumulativeShares(sent.confidence, CONFIDENCE_BUCKETS), shares: true }],
    ['Low-confidence share vs training (last hour) A', { key: single, values: one(low) }],
    ['Low-confidence share vs training (last hour) B', { key: single, values: one(lowBaseline) }],
    ['Low-confidence share vs training (last hour) C', { key: single, values: one(2 * Math.max(lowBaseline, 0.025)) }],
    ['Positive-class probability (binary models) A', { key: byLe, values: cumulativeShares(sent.positive, PROBABILITY_BUCKETS), shares: true }],
    ['Class shares per replica (rolling window) A', { key: byClass, values: shares }],
    ['Accuracy vs evaluation, fleet-wide (last hour) A', { key: single, values: one(correct / sent.labels.length) }],
    ['Accuracy vs evaluation, fleet-wide (last hour) B', { key: single, values: one(accuracy!) }],
    ['Accuracy vs evaluation, fleet-wide (last hour) C', { key: single, values: one(accuracy! - 0.1) }],
    ['Precision per class, fleet-wide (last hour) A', { key: byClass, values: ratios((cls) => cell(undefined, cls)) }],
    ['Recall per class, fleet-wide (last hour) A', { key: byClass, values: ratios((cls) => cell(cls, undefined)) }],
  ]);
}

/** Every query of the Classification row for classifier `c`, against what it was sent. */
async function checkClassificationValues(t: Test, prometheus: Prometheus, c: Classifier, sent: Sent, before: number): Promise<void> {
  const model = c.baseline.model;
  // The hour (60 s here) recorded after the burst, still holding the scrapes from before it.
  const at = await waitFor(
    `${model}: a recording ${SETTLE_SECONDS}s after its burst`,
    async () => {
      const [sample] = await prometheus.query(`timestamp(model:model_prediction_class:increase1h{model="${model}"})`);
      const recordedAt = sample && Number(sample.value![1]);
      return recordedAt && recordedAt >= before + SETTLE_SECONDS ? recordedAt : undefined;
    },
    { timeoutMs: (SETTLE_SECONDS + 20) * 1000, intervalMs: 500 },
  );
  const scraped = await prometheus.query(`sum(model_prediction_class_total{model="${model}"})`, at);
  t.equal(Number(scraped[0]?.value?.[1]), sent.predicted.length, `${model}: the class counters hold every row sent`);
  const [recorded] = await prometheus.query(`model:model_prediction_class:increase1h{model="${model}"}`, at);
  const recordedRows = Number(recorded!.value![1]);
  // Forward only, by less than the extrapolation threshold (1.1 intervals, and a margin).
  const reach = 1.5 * prometheus.intervalSeconds;
  t.ok(recordedRows >= sent.predicted.length && recordedRows <= sent.predicted.length * (1 + reach / (at - before - reach)), `${model}: ${recordedRows} rows recorded for ${sent.predicted.length} sent`);

  const expectations = classificationExpectations(c, sent, recordedRows);
  // The rate windows of the heatmaps reach back before the burst, as the rules' hour does.
  const values = new Map([
    ['job', JOB],
    ['instance', escapeRegex(c.target.address)],
    ['model', escapeRegex(model)],
    ['version', escapeRegex(c.baseline.version)],
    ['__rate_interval', `${Math.ceil(at - before) + 2 * prometheus.intervalSeconds}s`],
  ]);
  for (const panel of panels.filter((p) => p.row === CLASSIFICATION_ROW)) {
    if (queriesOf(panel).some((q) => BINARY_ONLY.test(q)) !== (c.baseline.classes.length === 2)) continue;
    for (const target of panel.targets ?? []) {
      const where = `${model}: "${panel.title}" ${target.refId}`;
      const expected = expectations.get(`${panel.title} ${target.refId}`);
      if (!expected) {
        t.fail(`${where}: no expected value in this test`);
        continue;
      }
      const result = await prometheus.query(substitute(target.expr, values), at);
      const got = new Map(result.map((s) => [expected.key(s.metric), Number(s.value![1])]));
      const total = got.get('+Inf');
      if (expected.shares) for (const [key, v] of got) got.set(key, v / total!);
      t.same([...got.keys()].sort(), [...expected.values.keys()].sort(), `${where}: one series per ${[...expected.values.keys()].join(', ') || 'value'}`);
      for (const [key, value] of expected.values) {
        // Exact up to floating-point rounding: the same ratio computed in another order.
        const actual = got.get(key);
        t.ok(actual !== undefined && Math.abs(actual - value) <= 1e-9 * Math.max(1, Math.abs(value)), `${where}${key ? ` ${key}` : ''}: ${actual} = ${value}`);
      }
    }
  }
}

t.test('every dashboard query returns data after simulated traffic', { timeout: 120_000 }, async (t) => {
  const replicas = await startApps(t, 2, FLAGS);
  // The candidate predicts 1.3x the primary's answers, so its diff, distribution and MAE differ.
  const candidateDir = await versionDir(join(await tempDir(t), 'v2'), '2', { scale: 1.3 });
  const [shadow] = await startApps(t, 1, [...FLAGS, '--candidate-dir', candidateDir, '--rollout', 'shadow']);
  const regressions = [...replicas, shadow!];
  const iris = await startClassifier(t, join(repoRoot, 'models', 'iris'), ['train.csv', 'test.csv'].map((f) => join(repoRoot, 'models', 'iris', f)));
  const binary = await startClassifier(t, await binaryModelDir(t), [join(repoRoot, 'models', 'fixtures', 'binary.csv')]);
  let next = 0;
  /** Indices into trainRows and trainTargets. */
  const batch = () => Array.from({ length: BATCH }, () => next++ % trainRows.length);
  const start = Math.floor(Date.now() / 1000);
  // Each replica gets per tick: normal rows, then their true targets as labels; drifted rows,
  // unlabelled (their truth is unknown); one invalid request (a row one value short); and one
  // rejected label list (an empty one).
  const traffic = startTraffic(
    t,
    async () => {
      for (const replica of regressions) {
        const normal = batch();
        const ids = batchRowIds((await send(replica, '/predict', { instances: normal.map((i) => trainRows[i]!) }, 200)) as { id: string; predictions: number[] });
        await sendLabels(replica, ids.map((id, j) => ({ id, actual: trainTargets[normal[j]!]! })));
        await send(replica, '/predict', { instances: batch().map((i) => drift(trainRows[i]!)) }, 200);
        await send(replica, '/predict', { features: trainRows[0]!.slice(0, featureNames.length - 1) }, 400);
        await send(replica, '/feedback', { labels: [] }, 400);
      }
    },
    { intervalMs: 250, maxMs: 110_000 },
  );
  const prometheus = await startPrometheus(t, { targets: [...regressions, iris.target, binary.target].map((r) => r.address) });
  // The candidate's pair rewritten as it is (a new mtime): a reload, swapped in, for the reloads panel.
  await writeFile(join(candidateDir, 'baseline.json'), await readFile(join(candidateDir, 'baseline.json')));
  await shadow!.app.reloader.check();

  // The classifiers get one burst each, once Prometheus has scraped their counters at zero.
  const before = Date.now() / 1000;
  const sent = [await burst(iris), await burst(binary)];
  await checkClassificationValues(t, prometheus, iris, sent[0]!, before);
  await checkClassificationValues(t, prometheus, binary, sent[1]!, before);

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

  // All selected, then one replica of each model: a regression has no Classification row, a
  // classifier none of the regression-only families, and only a binary one a positive class;
  // only the shadow replica has a Rollout row, seen as one compares versions: both selected.
  const regressionOnly = (p: Panel) => queriesOf(p).some((q) => REGRESSION_ONLY.test(q));
  const binaryOnly = (p: Panel) => queriesOf(p).some((q) => BINARY_ONLY.test(q));
  const classifierOnly = (p: Panel) => queriesOf(p).every((q) => CLASSIFIER_ONLY.test(q));
  const selections: { mode: 'all' | 'first'; instance?: string; allVersions?: boolean; shown: (p: (typeof panels)[number]) => boolean }[] = [
    { mode: 'all', shown: () => true },
    { mode: 'first', instance: replicas[0]!.address, shown: (p) => p.row !== CLASSIFICATION_ROW && p.row !== ROLLOUT_ROW },
    { mode: 'first', instance: iris.target.address, shown: (p) => !regressionOnly(p) && !binaryOnly(p) && p.row !== ROLLOUT_ROW },
    { mode: 'first', instance: binary.target.address, shown: (p) => !regressionOnly(p) && p.row !== ROLLOUT_ROW },
    { mode: 'first', instance: shadow!.address, allVersions: true, shown: (p) => p.row !== CLASSIFICATION_ROW && !classifierOnly(p) },
  ];
  let checked = 0;
  let expected = 0;
  for (const { mode, instance, allVersions, shown } of selections) {
    const selection = await select(t, prometheus, mode, builtins, instance, allVersions);
    for (const panel of panels.filter(shown)) {
      expected += (panel.targets ?? []).length;
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
            // Each version's own line where the legend names versions: primary 1 and candidate 2,
            // or the candidate alone where it is compared with its primary_version.
            const legend = target.legendFormat ?? '';
            const versions = !allVersions || panel.row !== ROLLOUT_ROW || !legend.includes('{{version}}') ? [] : legend.includes('{{primary_version}}') ? ['2'] : ['1', '2'];
            const missing = versions.find((v) => !result.some((s) => s.metric.version === v));
            trouble ??= missing && `no series for version ${missing}`;
          } catch (err) {
            trouble = `query failed: ${(err as Error).message}`;
          }
          t.notOk(trouble, trouble ? `${where}: ${trouble}\n  ${expr}` : `${where} returns data`);
          checked++;
        }
      }
    }
  }
  t.ok(checked >= expected && expected > 3 * panels.flatMap((p) => p.targets ?? []).length, `${checked} queries checked`);
  await traffic.stop();
});
