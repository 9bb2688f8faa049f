import { parseFile } from 'fast-csv';
import { DataInvalidError } from '../errors.js';
import type { Baseline } from '../model/baseline.js';

export interface DriftCheck {
  /** Rows of the log that were averaged (at most `last`). */
  rows: number;
  /** One WARNING line per drifted mean, or a single OK line. */
  lines: string[];
  drifted: boolean;
}

export interface DriftCheckOptions {
  file: string;
  baseline: Baseline;
  last: number;
  threshold: number;
}

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

/**
 * The lesson's check: average the last N rows of the feature log and warn for the overall feature
 * mean and each feature whose mean deviates from the training mean by more than the threshold.
 */
export async function checkFeatureLog({ file, baseline, last, threshold }: DriftCheckOptions): Promise<DriftCheck> {
  const checks = [
    { label: 'overall feature mean', column: 'feature_mean', trained: baseline.scalar_feature_mean },
    ...baseline.features.map((f) => ({ label: `feature "${f.name}" mean`, column: `${f.name}_mean`, trained: f.mean })),
  ];
  const tail: Record<string, string>[] = [];
  await new Promise<void>((resolve, reject) => {
    parseFile<Record<string, string>, Record<string, string>>(file, { headers: true })
      .on('error', (cause) => reject(new DataInvalidError(file, `cannot read the feature log: ${cause.message}`, { cause })))
      .on('headers', (headers: string[]) => {
        const missing = checks.filter((c) => !headers.includes(c.column)).map((c) => c.column);
        if (missing.length > 0) reject(new DataInvalidError(file, `lacks columns ${missing.join(', ')}: it was written for another model`));
      })
      .on('data', (row: Record<string, string>) => {
        tail.push(row);
        if (tail.length > last) tail.shift();
      })
      .on('end', () => resolve());
  });
  if (tail.length === 0) throw new DataInvalidError(file, 'has no rows yet; send some predictions first');

  const lines: string[] = [];
  for (const { label, column, trained } of checks) {
    const mean = tail.reduce((sum, row) => sum + Number(row[column]), 0) / tail.length;
    const deviation = (mean - trained) / Math.abs(trained);
    if (Math.abs(deviation) > threshold) {
      lines.push(
        `WARNING: ${label} is ${mean.toPrecision(6)} over the last ${tail.length} requests, ${deviation > 0 ? '+' : ''}${percent(deviation)} from the training mean ${trained.toPrecision(6)} (threshold ${percent(threshold)})`,
      );
    }
  }
  const drifted = lines.length > 0;
  if (!drifted) lines.push(`OK: no feature mean deviates more than ${percent(threshold)} from training over the last ${tail.length} requests`);
  return { rows: tail.length, lines, drifted };
}
