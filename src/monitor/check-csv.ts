import { createReadStream } from 'node:fs';
import { parse } from 'fast-csv';
import { DataInvalidError } from '../errors.js';
import { isCategorical, type Baseline, type ClassificationBaseline } from '../model/baseline.js';
import { classCountColumn } from './feature-log.js';

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
  /**
   * How many standard errors the mean must also be away from training. 10 single rows of a
   * binary feature such as `sex` move its mean by 20% a time in seven by chance alone; requiring
   * the deviation to exceed the sampling noise too keeps chance from raising a warning. 0 gives
   * the plain threshold rule.
   */
  minZ: number;
}

/** Three standard errors: chance alone passes it about once in 370 times per mean. */
export const DEFAULT_MIN_Z = 3;

const percent = (x: number) => `${(x * 100).toFixed(1)}%`;

interface MeanCheck {
  label: string;
  column: string;
  trained: number;
  stddev: number | undefined;
  /** A request whose rows all missed the feature logs no mean for it: the cell is empty. */
  mayBeEmpty: boolean;
}

/** The means the check compares, with the feature log column each is read from: numeric features only, as logged. */
function driftChecks(baseline: Baseline): MeanCheck[] {
  const anyNullable = baseline.features.some((f) => f.nullable === true);
  const overall = baseline.scalar_feature_mean;
  return [
    // The baseline has no spread for the overall mean; the requests' own spread stands in for it.
    ...(overall === null ? [] : [{ label: 'overall feature mean', column: 'feature_mean', trained: overall, stddev: undefined, mayBeEmpty: anyNullable }]),
    ...baseline.features.flatMap((f) =>
      isCategorical(f) ? [] : [{ label: `feature "${f.name}" mean`, column: `${f.name}_mean`, trained: f.mean, stddev: f.stddev, mayBeEmpty: f.nullable === true }],
    ),
  ];
}

/** A feature log row as read back: column name to cell text. */
export type LogRow = Record<string, string>;

/**
 * The lesson's judgement on the last rows of a feature log: a WARNING for the overall feature mean
 * and each feature mean that deviates from training by more than the threshold and by more than
 * minZ standard errors, or one OK line.
 */
export function judgeDrift(tail: readonly LogRow[], baseline: Baseline, threshold: number, minZ: number): DriftCheck {
  const lines: string[] = [];
  for (const { label, column, trained, stddev } of driftChecks(baseline)) {
    // An empty cell (every row of its request missed the feature) is no mean to average.
    const logged = tail.filter((row) => row[column] !== '');
    const n = logged.length;
    if (n === 0) continue;
    // Each log row is the mean of its request's rows; the mean of n such means has variance
    // stddev^2 * sum(1 / rows_i) / n^2 when rows are drawn from the training distribution (a
    // little more where some rows missed the feature).
    const inverseRows = logged.reduce((sum, row) => sum + 1 / Math.max(1, Number(row.rows)), 0);
    const values = logged.map((row) => Number(row[column]));
    const mean = values.reduce((sum, v) => sum + v, 0) / n;
    const standardError =
      stddev !== undefined ? (stddev * Math.sqrt(inverseRows)) / n : n < 2 ? 0 : Math.sqrt(values.reduce((sum, v) => sum + (v - mean) ** 2, 0) / (n - 1) / n);
    const deviation = (mean - trained) / Math.abs(trained);
    const z = standardError === 0 ? Infinity : Math.abs(mean - trained) / standardError;
    if (Math.abs(deviation) > threshold && z > minZ) {
      lines.push(
        `WARNING: ${label} is ${mean.toPrecision(6)} over the last ${n} requests, ${deviation > 0 ? '+' : ''}${percent(deviation)} from the training mean ${trained.toPrecision(6)} (threshold ${percent(threshold)}, ${Number.isFinite(z) ? z.toFixed(1) : 'inf'} standard errors)`,
      );
    }
  }
  if (baseline.task === 'classification') lines.push(...classShareWarnings(tail, baseline, threshold, minZ));
  const drifted = lines.length > 0;
  if (!drifted) {
    const what = baseline.task === 'classification' ? 'no feature mean and no class share' : 'no feature mean';
    lines.push(`OK: ${what} deviates more than ${percent(threshold)} (and ${minZ} standard errors) from training over the last ${tail.length} requests`);
  }
  return { rows: tail.length, lines, drifted };
}

/**
 * A classifier's class shares over the rows of the last requests against the shares of its
 * predictions on the training data: a WARNING where one moved more than `threshold` (absolute:
 * 0.2 is 20 points) and more than minZ binomial standard errors, sqrt(p (1 - p) / rows).
 */
function classShareWarnings(tail: readonly LogRow[], baseline: ClassificationBaseline, threshold: number, minZ: number): string[] {
  const rows = tail.reduce((sum, row) => sum + Number(row.rows), 0);
  return baseline.classes.flatMap((cls, c) => {
    const share = tail.reduce((sum, row) => sum + Number(row[classCountColumn(cls)]), 0) / rows;
    const trained = baseline.prediction.class_shares[c]!;
    const z = Math.abs(share - trained) / Math.sqrt((trained * (1 - trained)) / rows);
    if (!(Math.abs(share - trained) > threshold && z > minZ)) return [];
    const points = (share - trained) * 100;
    return [
      `WARNING: class "${cls}" is ${percent(share)} of the ${rows} rows of the last ${tail.length} requests, ${points > 0 ? '+' : ''}${points.toFixed(1)} points from its training share ${percent(trained)} (threshold ${(threshold * 100).toFixed(1)} points, ${z.toFixed(1)} standard errors)`,
    ];
  });
}

export interface LogCheck extends DriftCheck {
  /** Lines of the log skipped as malformed (a row torn by a crash or a full disk), counting from 1, the header's. */
  skippedLines: number[];
}

/** Decimal numbers only: Number() would also read '' as 0 and '0x10' as 16. */
const decimal = /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/;
const isNumber = (cell: string | undefined) => cell !== undefined && decimal.test(cell) && Number.isFinite(Number(cell));

/**
 * A row that can be read as data: a positive whole row count and a number in every checked
 * column. prediction_mean may be empty (no prediction of the request was finite); check-csv does
 * not average it.
 */
function wellFormed(row: LogRow, columns: readonly string[], mayBeEmpty: ReadonlySet<string>): boolean {
  return (
    /^[1-9]\d*$/.test(row.rows ?? '') &&
    (row.prediction_mean === '' || row.prediction_mean === undefined || isNumber(row.prediction_mean)) &&
    columns.every((c) => isNumber(row[c]) || (mayBeEmpty.has(c) && row[c] === ''))
  );
}

function skippedReport(lines: readonly number[]): string {
  const shown = lines.slice(0, 10).join(', ');
  const more = lines.length > 10 ? ` and ${lines.length - 10} more` : '';
  return `skipped ${lines.length} malformed line${lines.length === 1 ? '' : 's'} at line${lines.length === 1 ? '' : 's'} ${shown}${more} (torn or partial rows, not read as data)`;
}

/**
 * Reads the last `last` rows of the feature log with fast-csv and judges them (judgeDrift). A
 * malformed line, such as a row cut short by a crash or a full disk (a last line without its
 * line end is one too), is skipped and reported, never read as data.
 */
export async function checkFeatureLog({ file, baseline, last, threshold, minZ }: DriftCheckOptions): Promise<LogCheck> {
  const classColumns = baseline.task === 'classification' ? baseline.classes.map(classCountColumn) : [];
  const checks = driftChecks(baseline);
  const columns = [...checks.map((c) => c.column), ...classColumns];
  const mayBeEmpty = new Set(checks.filter((c) => c.mayBeEmpty).map((c) => c.column));
  // One row more than asked for, in case the last one turns out to be torn.
  const tail: LogRow[] = [];
  const skippedLines: number[] = [];
  let line = 1;
  let lastRowLine = 0;
  let lastByte: number | undefined;
  const lineOf = (row: LogRow | string[]) => {
    const at = ++line;
    for (const cell of Object.values(row)) line += cell.split('\n').length - 1;
    return at;
  };
  await new Promise<void>((resolve, reject) => {
    const input = createReadStream(file);
    const parser = input.pipe(parse<LogRow, LogRow>({ headers: true, strictColumnHandling: true }).validate((row: LogRow) => wellFormed(row, columns, mayBeEmpty)));
    // pipe() (and fast-csv's parseFile) does not forward a read error such as ENOENT: it would be
    // an unhandled 'error' event that kills the process. Hand it to the parser's handler below.
    input.once('error', (err) => parser.destroy(err));
    input.on('data', (chunk) => (lastByte = (chunk as Buffer).at(-1)));
    parser
      .on('error', (cause) => reject(new DataInvalidError(file, `cannot read the feature log: ${cause.message}`, { cause })))
      .on('headers', (headers: string[]) => {
        const missing = columns.filter((column) => !headers.includes(column));
        if (missing.length > 0) reject(new DataInvalidError(file, `lacks columns ${missing.join(', ')}: it was written for another model`));
      })
      .on('data', (row: LogRow) => {
        lastRowLine = lineOf(row);
        tail.push(row);
        if (tail.length > last + 1) tail.shift();
      })
      .on('data-invalid', (row: LogRow | string[]) => {
        skippedLines.push(lineOf(row));
        lastRowLine = 0;
      })
      .on('end', () => resolve());
  });
  if (lastRowLine > 0 && lastByte !== 0x0a) {
    tail.pop();
    skippedLines.push(lastRowLine);
  }
  if (tail.length > last) tail.shift();
  const skipped = skippedLines.length > 0 ? [skippedReport(skippedLines)] : [];
  if (tail.length === 0) throw new DataInvalidError(file, `has no rows yet; send some predictions first${skipped.map((s) => ` (${s})`).join('')}`);
  const check = judgeDrift(tail, baseline, threshold, minZ);
  return { ...check, lines: [...skipped, ...check.lines], skippedLines };
}

/**
 * Data rows in a feature log now: its complete lines but the header; undefined when the file
 * cannot be read. Streams the file and finds line ends natively, so a large log costs no memory.
 */
export async function countLogRows(file: string): Promise<number | undefined> {
  let lines = 0;
  try {
    for await (const chunk of createReadStream(file)) {
      const bytes = chunk as Buffer;
      for (let i = bytes.indexOf(0x0a); i !== -1; i = bytes.indexOf(0x0a, i + 1)) lines++;
    }
  } catch {
    return undefined;
  }
  return Math.max(0, lines - 1);
}

/**
 * Waits, at most `timeoutMs`, until a readable log holds `rows` data rows. The server answers a
 * prediction before its row reaches the file (rows go out in batches), so a client that reads the
 * log right after its last answer would miss its newest rows.
 */
export async function waitForLogRows(file: string, rows: number, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const now = await countLogRows(file);
    if (now === undefined || now >= rows || Date.now() >= deadline) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
