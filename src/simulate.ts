import { setTimeout as sleep } from 'node:timers/promises';
import { Pool } from 'undici';
import cliProgress from 'cli-progress';
import { readNumericCsv } from './model/csv-rows.js';
import { DataInvalidError } from './errors.js';
import { mulberry32 } from './random.js';
import { rowIds } from './request-ids.js';

export interface SimulateOptions {
  url: string;
  requests: number;
  /** How much the chosen features change; what it means depends on the scenario. */
  drift: number;
  /** How the chosen features change (scenarioChange); mean when left out. */
  scenario?: Scenario;
  /** Features to drift; empty means every feature. */
  features: string[];
  concurrency: number;
  /** Rows per request: 1 sends {"features"}, more sends {"instances"}. */
  batch: number;
  /** Training CSV to sample rows from. */
  data: string;
  /** Column of `data` that is the target, not a feature. */
  target: string;
  seed: number;
  /** Send each sampled row's true target to /feedback as the label of its prediction (default off). */
  feedback?: boolean;
  /** Seconds between a prediction's answer and its label (default 0). */
  labelDelay?: number;
  /** Standard deviation of gaussian noise added to each label (default 0: the exact target). */
  labelNoise?: number;
  /** Sent as `Authorization: Bearer` with every request: a token of the server's --ingest-token-file (and --predict-token-file, when it has one). */
  token?: string;
  /** Where progress goes; a bar is drawn only when it is a terminal and the run is long. */
  progress?: NodeJS.WriteStream;
}

export interface SimulateSummary {
  sent: number;
  rows: number;
  ok: number;
  failed: Record<string, number>;
  seconds: number;
  predictionMean: number;
  /** A classifier's answers: rows answered per class. */
  classes: Record<string, number>;
  /** Labels sent to /feedback and what the server answered for each, by outcome or failure; a classifier's matched labels that were right. */
  labels: { sent: number; outcomes: Record<string, number>; failed: Record<string, number>; absErrorSum: number; right: number };
}

/** A row's target: a number for a regression, a class name for a classifier. */
type Target = number | string;
/** What /predict answered for a row: a value (null: not finite), or a classifier's label. */
type Answered = number | string | null;

/** The feature rows of a CSV and, when it has the `target` column, each row's target (a classifier's class names are kept as text). */
export async function loadRows(file: string, target: string): Promise<{ names: string[]; rows: number[][]; targets: Target[] | undefined }> {
  const { columns, rows } = await readNumericCsv(file, { text: [target] });
  const keep = columns.map((_, i) => i).filter((i) => columns[i] !== target);
  const targetColumn = columns.indexOf(target);
  const out: number[][] = [];
  const targets: Target[] = [];
  for await (const { values, cells } of rows) {
    out.push(keep.map((i) => values[i]!));
    if (targetColumn >= 0) targets.push(cells[targetColumn]!);
  }
  // A column of numbers is a regression's target; any other text makes every target a class name.
  if (targets.every((v) => Number.isFinite(Number(v)))) targets.forEach((v, i) => (targets[i] = Number(v)));
  if (out.length === 0) throw new DataInvalidError(file, 'has no rows to sample');
  return { names: keep.map((i) => columns[i]!), rows: out, targets: targetColumn < 0 ? undefined : targets };
}

/** Standard normal draws from a uniform source (Box-Muller). */
function gaussian(random: () => number): () => number {
  return () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random());
}

export const scenarios = ['mean', 'widen', 'bimodal'] as const;
export type Scenario = (typeof scenarios)[number];

/**
 * Changes the chosen columns of a row by the scenario, with m and s the mean and (population)
 * standard deviation of the column over `rows`, and d the drift:
 *   mean     v' = v * (1 + d)                             the mean moves by d (relative)
 *   widen    v' = m + (v - m) * (1 + d)                   the spread grows by 1 + d, the mean stays
 *   bimodal  v' = m + c * (1 + d) * s, c = -1 or +1       two modes, the mean stays
 * widen and bimodal move rows between the baseline's quantile bins while the mean stays where
 * it was: drift that only PSI sees. bimodal flips a fair coin per value: `coin` is uniform in [0, 1).
 */
export function scenarioChange(
  scenario: Scenario,
  drift: number,
  rows: readonly (readonly number[])[],
  changed: readonly boolean[],
  coin: () => number,
): (row: readonly number[]) => number[] {
  const k = 1 + drift;
  const means = changed.map((_, f) => rows.reduce((sum, row) => sum + row[f]!, 0) / rows.length);
  const stddevs = means.map((m, f) => Math.sqrt(rows.reduce((sum, row) => sum + (row[f]! - m) ** 2, 0) / rows.length));
  const change: Record<Scenario, (v: number, f: number) => number> = {
    mean: (v) => v * k,
    widen: (v, f) => means[f]! + (v - means[f]!) * k,
    bimodal: (_v, f) => means[f]! + (coin() < 0.5 ? -k : k) * stddevs[f]!,
  };
  const apply = change[scenario];
  return (row) => row.map((v, f) => (changed[f] ? apply(v, f) : v));
}

/** Sends sampled (and optionally drifted) training rows to a running server's /predict. */
export async function simulate(options: SimulateOptions): Promise<SimulateSummary> {
  const { names, rows, targets } = await loadRows(options.data, options.target);
  if (options.feedback && !targets) throw new DataInvalidError(options.data, `has no column "${options.target}"; --feedback sends it as each row's label (name it with --target)`);
  if (options.labelNoise && targets?.some((v) => typeof v === 'string')) {
    throw new DataInvalidError('--label-noise', `adds noise to a number, but the targets in ${options.data} are class names`);
  }
  const unknown = options.features.filter((f) => !names.includes(f));
  if (unknown.length > 0) throw new DataInvalidError('--features', `unknown feature(s) ${unknown.join(', ')}; known: ${names.join(', ')}`);
  const drifted = new Set(options.features.length === 0 ? names : options.features);
  const change = scenarioChange(
    options.scenario ?? 'mean',
    options.drift,
    rows,
    names.map((name) => drifted.has(name)),
    // Its own stream, so that bimodal's coin does not change which rows are sampled.
    mulberry32(options.seed ^ 0x27d4eb2f),
  );
  const random = mulberry32(options.seed);
  const pick = () => Math.floor(random() * rows.length);
  // Its own stream, so that turning noise on does not change which rows are sampled.
  const noise = gaussian(mulberry32(options.seed ^ 0x5bd1e995));

  const target = new URL('/predict', options.url);
  const headers = { 'content-type': 'application/json', ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }) };
  const pool = new Pool(target.origin, { connections: options.concurrency, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const summary: SimulateSummary = {
    sent: 0,
    rows: 0,
    ok: 0,
    failed: {},
    seconds: 0,
    predictionMean: Number.NaN,
    classes: {},
    labels: { sent: 0, outcomes: {}, failed: {}, absErrorSum: 0, right: 0 },
  };
  const count = (into: Record<string, number>, key: string, n = 1) => (into[key] = (into[key] ?? 0) + n);
  const labelsPending: Promise<void>[] = [];
  /** Sends the labels of one answered request once the delay has passed: one label, or a list for a batch. */
  const sendLabels = async (ids: string[], predictions: Answered[], actuals: Target[]) => {
    await sleep((options.labelDelay ?? 0) * 1000);
    const labels = ids.map((id, r) => ({ id, actual: actuals[r]! }));
    try {
      const response = await pool.request({
        method: 'POST',
        path: '/feedback',
        headers,
        body: JSON.stringify(labels.length === 1 ? labels[0] : { labels }),
      });
      const answer = (await response.body.json()) as { outcome?: string; outcomes?: string[] };
      if (response.statusCode !== 200) {
        count(summary.labels.failed, String(response.statusCode), labels.length);
        return;
      }
      (answer.outcomes ?? [answer.outcome!]).forEach((outcome, r) => {
        count(summary.labels.outcomes, outcome);
        if (outcome !== 'matched') return;
        const [predicted, actual] = [predictions[r], actuals[r]];
        if (typeof predicted === 'number' && typeof actual === 'number') summary.labels.absErrorSum += Math.abs(predicted - actual);
        else if (predicted === actual) summary.labels.right++;
      });
    } catch (err) {
      count(summary.labels.failed, (err as { code?: string }).code ?? 'network', labels.length);
    }
  };
  const showBar = options.progress?.isTTY === true && options.requests >= 200;
  const bar = showBar ? new cliProgress.SingleBar({ stream: options.progress, clearOnComplete: true }, cliProgress.Presets.shades_classic) : undefined;
  bar?.start(options.requests, 0);
  let predictionSum = 0;
  let predictionCount = 0;
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < options.requests) {
      next++;
      const picked = Array.from({ length: options.batch }, pick);
      const batch = picked.map((i) => change(rows[i]!));
      const body = options.batch === 1 ? { features: batch[0] } : { instances: batch };
      summary.sent++;
      summary.rows += options.batch;
      try {
        const response = await pool.request({ method: 'POST', path: target.pathname, headers, body: JSON.stringify(body) });
        const answer = (await response.body.json()) as { id: string; prediction?: Answered; predictions?: Answered[] };
        if (response.statusCode === 200) {
          summary.ok++;
          const predictions = answer.predictions ?? [answer.prediction!];
          for (const p of predictions) {
            if (typeof p === 'string') count(summary.classes, p);
            if (typeof p !== 'number') continue;
            predictionSum += p;
            predictionCount++;
          }
          if (options.feedback) {
            summary.labels.sent += options.batch;
            const actuals = picked.map((i) => {
              const actual = targets![i]!;
              return typeof actual === 'number' ? actual + (options.labelNoise ?? 0) * noise() : actual;
            });
            const ids = rowIds({ requestId: answer.id, rows: predictions.length, batch: answer.predictions !== undefined });
            labelsPending.push(sendLabels(ids, predictions, actuals));
          }
        } else {
          count(summary.failed, String(response.statusCode));
        }
      } catch (err) {
        count(summary.failed, (err as { code?: string }).code ?? 'network');
      }
      bar?.increment();
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
    await Promise.all(labelsPending);
  } finally {
    bar?.stop();
    await pool.close();
  }
  summary.seconds = (performance.now() - started) / 1000;
  summary.predictionMean = predictionSum / predictionCount;
  return summary;
}

export function formatSummary(s: SimulateSummary, options: SimulateOptions): string {
  const failed = Object.entries(s.failed).map(([k, n]) => `${n} x ${k}`).join(', ') || 'none';
  // The mean scenario is the original drift and keeps its original wording.
  const scenario = options.scenario === undefined || options.scenario === 'mean' ? '' : `${options.scenario} `;
  const drift = `${options.drift >= 0 ? '+' : ''}${(options.drift * 100).toFixed(1)}% on ${options.features.length ? options.features.join(', ') : 'every feature'}`;
  return [
    `sent ${s.sent} requests (${s.rows} rows) to ${options.url} with ${scenario}drift ${drift}`,
    `answered 200: ${s.ok}; failed: ${failed}; ${s.seconds.toFixed(2)} s, ${(s.sent / s.seconds).toFixed(1)} requests/s`,
    Object.keys(s.classes).length > 0
      ? `predicted classes: ${Object.entries(s.classes).sort(([a], [b]) => a.localeCompare(b)).map(([c, n]) => `${c} ${n}`).join(', ')}`
      : `mean prediction: ${Number.isNaN(s.predictionMean) ? 'n/a' : s.predictionMean.toFixed(2)}`,
    ...(options.feedback ? [formatLabels(s.labels, options, Object.keys(s.classes).length > 0)] : []),
  ].join('\n');
}

function formatLabels(labels: SimulateSummary['labels'], options: SimulateOptions, classifier: boolean): string {
  const list = (counts: Record<string, number>) => Object.entries(counts).map(([k, n]) => `${n} ${k}`).join(', ') || 'none';
  const matched = labels.outcomes.matched ?? 0;
  const error = classifier
    ? `accuracy of the matched labels: ${matched === 0 ? 'n/a' : (labels.right / matched).toFixed(3)}`
    : `MAE of the matched labels: ${matched === 0 ? 'n/a' : (labels.absErrorSum / matched).toFixed(2)}`;
  return [
    `labels: sent ${labels.sent} to /feedback ${options.labelDelay ?? 0} s after each answer, noise sd ${options.labelNoise ?? 0}`,
    `  answered: ${list(labels.outcomes)}; failed: ${list(labels.failed)}; ${error}`,
  ].join('\n');
}
