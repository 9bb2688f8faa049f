import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp, type AppOptions } from '../../src/app.js';
import { parseServeConfig } from '../../src/config.js';
import type { NumericFeatureBaseline, RegressionBaseline } from '../../src/model/baseline.js';

interface Teardown {
  teardown(fn: () => unknown): void;
}

export const repoRoot = new URL('../../', import.meta.url).pathname;
/** The diabetes model's baseline; every feature of it is numeric. */
export const diabetesBaseline = JSON.parse(readFileSync(join(repoRoot, 'models/diabetes/baseline.json'), 'utf8')) as Omit<RegressionBaseline, 'features'> & { features: NumericFeatureBaseline[] };
export const featureNames = diabetesBaseline.features.map((f) => f.name);

const trainLines = readFileSync(join(repoRoot, 'models/diabetes/train.csv'), 'utf8')
  .trim()
  .split('\n')
  .slice(1)
  .map((line) => line.split(',').map(Number));
/** The first rows of train.csv without the target: real inputs for tests. */
export const trainRows: number[][] = trainLines.map((values) => values.slice(0, featureNames.length));
/** The target of each of trainRows (the column after the features): ground truth for feedback tests. */
export const trainTargets: number[] = trainLines.map((values) => values[featureNames.length]!);

export async function tempDir(t: Teardown): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'modelwatch-test-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** Builds the app on the default model with its feature log in a temp dir; closed in teardown. */
export async function testApp(t: Teardown, flags: string[] = [], options: AppOptions = {}): Promise<{ app: FastifyInstance; csv: string; dir: string }> {
  const dir = await tempDir(t);
  const csv = join(dir, 'feature_log.csv');
  // The overload guard off unless a test sets it: on a busy CI machine a stalled loop would shed
  // the very requests a test counts (a sidecar test's upstream answering 503).
  const config = parseServeConfig(['--model-dir', join(repoRoot, 'models/diabetes'), '--csv', csv, '--log-level', 'silent', '--max-event-loop-delay-ms', '0', ...flags], {});
  const app = await buildApp(config, options);
  t.teardown(() => app.close());
  return { app, csv, dir };
}

export const predict = (app: FastifyInstance, body: unknown) =>
  app.inject({ method: 'POST', url: '/predict', headers: { 'content-type': 'application/json' }, payload: JSON.stringify(body) });

/** Value of the one exposition line that starts with `series ` (exact labels in exposition order). */
/** The row ids of a batch answer `{"id", "predictions"}`: row r's is `<id>.<r>`, by definition. */
export const batchRowIds = ({ id, predictions }: { id: string; predictions: unknown[] }): string[] => predictions.map((_, r) => `${id}.${r}`);

export function sample(exposition: string, series: string): number | undefined {
  const line = exposition.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

export async function scrape(app: FastifyInstance): Promise<string> {
  const response = await app.inject({ method: 'GET', url: '/metrics' });
  return response.body;
}

/**
 * Polls until `check` holds, 15 s at most: the feature log and the store confirm work
 * asynchronously, and on a 2-core machine running other test files the 3 s this once allowed ran out.
 */
export async function eventually(check: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 1500; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** A pino destination that keeps every line, parsed, for tests that check what was logged. */
export function logCapture() {
  const logged: Record<string, unknown>[] = [];
  const logStream = new Writable({ write(chunk, _enc, cb) { logged.push(JSON.parse(chunk.toString())); cb(); } });
  return { logged, logStream };
}
