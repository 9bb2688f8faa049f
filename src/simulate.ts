import { Pool } from 'undici';
import cliProgress from 'cli-progress';
import { readNumericCsv } from './model/csv-rows.js';
import { DataInvalidError } from './errors.js';
import { mulberry32 } from './random.js';

export interface SimulateOptions {
  url: string;
  requests: number;
  /** Relative change applied to the chosen features: value * (1 + drift). */
  drift: number;
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
}

export async function loadRows(file: string, target: string): Promise<{ names: string[]; rows: number[][] }> {
  const { columns, rows } = await readNumericCsv(file);
  const keep = columns.map((_, i) => i).filter((i) => columns[i] !== target);
  const out: number[][] = [];
  for await (const { values } of rows) out.push(keep.map((i) => values[i]!));
  if (out.length === 0) throw new DataInvalidError(file, 'has no rows to sample');
  return { names: keep.map((i) => columns[i]!), rows: out };
}

/** Sends sampled (and optionally drifted) training rows to a running server's /predict. */
export async function simulate(options: SimulateOptions): Promise<SimulateSummary> {
  const { names, rows } = await loadRows(options.data, options.target);
  const unknown = options.features.filter((f) => !names.includes(f));
  if (unknown.length > 0) throw new DataInvalidError('--features', `unknown feature(s) ${unknown.join(', ')}; known: ${names.join(', ')}`);
  const drifted = new Set(options.features.length === 0 ? names : options.features);
  const factor = names.map((name) => (drifted.has(name) ? 1 + options.drift : 1));
  const random = mulberry32(options.seed);
  const sampleRow = () => rows[Math.floor(random() * rows.length)]!.map((v, f) => v * factor[f]!);

  const target = new URL('/predict', options.url);
  const pool = new Pool(target.origin, { connections: options.concurrency, headersTimeout: 30_000, bodyTimeout: 30_000 });
  const summary: SimulateSummary = { sent: 0, rows: 0, ok: 0, failed: {}, seconds: 0, predictionMean: Number.NaN };
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
      const batch = Array.from({ length: options.batch }, sampleRow);
      const body = options.batch === 1 ? { features: batch[0] } : { instances: batch };
      summary.sent++;
      summary.rows += options.batch;
      try {
        const response = await pool.request({ method: 'POST', path: target.pathname, headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
        const answer = (await response.body.json()) as { prediction?: number; predictions?: number[] };
        if (response.statusCode === 200) {
          summary.ok++;
          for (const p of answer.predictions ?? [answer.prediction!]) {
            predictionSum += p;
            predictionCount++;
          }
        } else {
          summary.failed[String(response.statusCode)] = (summary.failed[String(response.statusCode)] ?? 0) + 1;
        }
      } catch (err) {
        const key = (err as { code?: string }).code ?? 'network';
        summary.failed[key] = (summary.failed[key] ?? 0) + 1;
      }
      bar?.increment();
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.max(1, options.concurrency) }, worker));
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
  const drift = `${options.drift >= 0 ? '+' : ''}${(options.drift * 100).toFixed(1)}% on ${options.features.length ? options.features.join(', ') : 'every feature'}`;
  return [
    `sent ${s.sent} requests (${s.rows} rows) to ${options.url} with drift ${drift}`,
    `answered 200: ${s.ok}; failed: ${failed}; ${s.seconds.toFixed(2)} s, ${(s.sent / s.seconds).toFixed(1)} requests/s`,
    `mean prediction: ${Number.isNaN(s.predictionMean) ? 'n/a' : s.predictionMean.toFixed(2)}`,
  ].join('\n');
}
