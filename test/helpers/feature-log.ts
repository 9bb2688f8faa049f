import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { Test } from 'tap';
import { buildApp } from '../../src/app.js';
import { parseServeConfig } from '../../src/config.js';
import { featureLogHeader, type FeatureLogOptions } from '../../src/monitor/feature-log.js';
import { eventually, featureNames, logCapture, predict, repoRoot, sample, scrape } from './app.js';

export const header = featureLogHeader(featureNames).join(',');
const id = 'model="diabetes",version="1"';

/** The app on the diabetes model logging to `csv`, its pino lines kept in `logged`; closed in teardown. */
export async function logApp(t: Test, csv: string, featureLog: FeatureLogOptions = {}) {
  const { logged, logStream } = logCapture();
  const app = await buildApp(parseServeConfig(['--model-dir', join(repoRoot, 'models/diabetes'), '--csv', csv, '--log-level', 'info'], {}), { logStream, featureLog });
  t.teardown(() => app.close());
  return { app, logged };
}

/** [written, failed, lost] rows of the feature log, as /metrics says. */
export async function logCounts(app: FastifyInstance): Promise<number[]> {
  const m = await scrape(app);
  return ['rows', 'errors', 'lost_rows'].map((c) => sample(m, `model_feature_log_${c}_total{${id}}`)!);
}

/**
 * Sends one-row predictions one at a time, each settled in the log (written, failed or lost)
 * before the next, so each goes out in a write of its own; every answer must be 200. Their ids.
 */
export async function sendSettled(t: Test, app: FastifyInstance, rows: number[][]): Promise<string[]> {
  const ids: string[] = [];
  for (const row of rows) {
    const before = (await logCounts(app)).reduce((a, b) => a + b);
    const response = await predict(app, { features: row });
    t.equal(response.statusCode, 200, 'prediction succeeds whatever the log does');
    ids.push(response.json().id);
    await eventually(async () => (await logCounts(app)).reduce((a, b) => a + b) === before + 1, 'the row settled');
  }
  return ids;
}

/** The lines of a log file but the header and the final empty one. */
export const dataLines = (file: string): string[] => readFileSync(file, 'utf8').split('\n').filter((line) => line !== '' && line !== header);
