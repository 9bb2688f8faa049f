import { createWriteStream, openSync, readSync, closeSync, statSync } from 'node:fs';
import type { Writable } from 'node:stream';
import type { FastifyBaseLogger } from 'fastify';
import { CsvHeaderMismatchError } from '../errors.js';
import { withinFloat32 } from './float32.js';
import type { FeatureLogCounts } from './metrics.js';

export type OpenSink = (file: string) => Writable;

/** How long a broken log waits before trying to reopen the file (disk freed, permission fixed). */
const REOPEN_AFTER_MS = 1000;
/**
 * Rows wait up to FLUSH_MS, or until FLUSH_BYTES are pending, then go out in one write: a write
 * per request would cost a stream write and a syscall on libuv's pool for every prediction. A
 * crash can lose at most these milliseconds of rows; a shutdown loses none (close() flushes).
 */
const FLUSH_MS = 20;
const FLUSH_BYTES = 64 * 1024;

export function featureLogHeader(features: readonly string[]): string[] {
  return ['timestamp', 'id', 'model', 'version', 'rows', 'feature_mean', 'prediction_mean', ...features.map((f) => `${f}_mean`)];
}

/**
 * One CSV field as fast-csv writes it (RFC 4180): quoted when it holds a quote, comma or line
 * break, quotes doubled, NUL dropped. Numbers, ISO timestamps and UUIDs never need it.
 */
export function csvField(value: string): string {
  const field = value.replace(/\0/g, '');
  return /[",\r\n]/.test(field) ? `"${field.replace(/"/g, '""')}"` : field;
}

interface Sink {
  file: Writable;
  headerPending: boolean;
  broken: boolean;
}

/**
 * The CSV feature log of DESIGN.md: one writer, so rows never interleave; one row per accepted
 * request; the header only when the file is new or empty, so restarts append under one header.
 * A write failure never fails a prediction: the row is counted as an error, the failure is logged
 * once per streak, and the file is reopened on a later row.
 *
 * Rows are formatted here rather than through a fast-csv stream, whose per-row stream machinery
 * and per-field escaping cost several microseconds a request, more than all the other monitoring;
 * the output is byte for byte what fast-csv writes (the text fields are escaped as it does, once),
 * and check-csv still reads it with fast-csv.
 */
export class FeatureLog implements FeatureLogCounts {
  rowsWritten = 0;
  rowErrors = 0;
  private sink: Sink | undefined;
  private failing = false;
  private failedSince = 0;
  private lastOpenAttempt = 0;
  private readonly header: string;
  /** `,model,version,`: the same in every row, escaped once. */
  private readonly between: string;
  /** Scratch for one row's feature means, reused: append runs once per accepted request. */
  private readonly means: Float64Array;
  private pending = '';
  private pendingRows = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  /** The ISO timestamp of the last row's millisecond: under load many rows share one. */
  private stampMs = -1;
  private stamp = '';

  constructor(
    readonly file: string,
    model: string,
    version: string,
    private readonly features: readonly string[],
    private readonly log: FastifyBaseLogger,
    private readonly openSink: OpenSink = (path) => createWriteStream(path, { flags: 'a' }),
  ) {
    this.header = `${featureLogHeader(features).map(csvField).join(',')}\n`;
    this.between = `,${csvField(model)},${csvField(version)},`;
    this.means = new Float64Array(features.length);
    this.checkExistingHeader();
    this.sink = this.open();
  }

  /** Appends the request's row: per-feature means over its rows, the overall feature mean, the prediction mean. */
  append(id: string, features: Float64Array, predictions: ArrayLike<number>, rows: number): void {
    const width = this.features.length;
    const featureMeans = this.means.fill(0);
    let all = 0;
    for (let r = 0; r < rows; r++) {
      for (let f = 0; f < width; f++) featureMeans[f] += features[r * width + f]!;
    }
    for (let f = 0; f < width; f++) {
      all += featureMeans[f]!;
      featureMeans[f]! /= rows;
    }
    // The mean of the predictions the metrics count; empty when none is (all non_finite), so the
    // log never holds Infinity or NaN.
    let predictionSum = 0;
    let predicted = 0;
    for (let r = 0; r < rows; r++) {
      const p = predictions[r]!;
      if (withinFloat32(p)) {
        predictionSum += p;
        predicted++;
      }
    }
    const now = Date.now();
    if (now !== this.stampMs) {
      this.stampMs = now;
      this.stamp = new Date(now).toISOString();
    }
    let line = `${this.stamp},${id}${this.between}${rows},${all / (rows * width)},${predicted === 0 ? '' : predictionSum / predicted}`;
    for (let f = 0; f < width; f++) line += `,${featureMeans[f]}`;

    if (!this.usableSink()) {
      this.rowErrors++;
      return;
    }
    this.pending += `${line}\n`;
    this.pendingRows++;
    if (this.pending.length >= FLUSH_BYTES) this.flush();
    else this.flushTimer ??= setTimeout(this.flush, FLUSH_MS);
  }

  /** Writes every row appended so far and closes the file. */
  async close(): Promise<void> {
    this.flush();
    const sink = this.sink;
    this.sink = undefined;
    if (!sink || sink.broken) return;
    await new Promise<void>((resolve) => sink.file.end(resolve));
  }

  /** Hands the pending rows to the file in one write; they count as written or failed when it settles. */
  private readonly flush = (): void => {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const rows = this.pendingRows;
    if (rows === 0) return;
    const chunk = this.pending;
    this.pending = '';
    this.pendingRows = 0;
    const sink = this.sink;
    if (!sink || sink.broken) {
      this.rowErrors += rows;
      return;
    }
    if (sink.headerPending) {
      sink.headerPending = false;
      sink.file.write(this.header);
    }
    sink.file.write(chunk, (err) => this.settleRows(rows, err ?? undefined));
  };

  private usableSink(): Sink | undefined {
    if (this.sink && !this.sink.broken) return this.sink;
    const now = Date.now();
    if (now - this.lastOpenAttempt < REOPEN_AFTER_MS) return undefined;
    this.sink = this.open();
    return this.sink;
  }

  private open(): Sink {
    this.lastOpenAttempt = Date.now();
    const size = fileSize(this.file);
    const file = this.openSink(this.file);
    const sink: Sink = { file, headerPending: size === 0, broken: false };
    // A crash can leave the last row without its line end; start ours on a fresh line.
    if (size > 0 && lastByte(this.file) !== 0x0a) file.write('\n');
    file.on('error', (err) => {
      sink.broken = true;
      this.noteFailure(err);
    });
    return sink;
  }

  /** Counts the outcome of a write of `rows` rows; logs only when a failure streak starts and ends. */
  private settleRows(rows: number, err: Error | undefined): void {
    if (err) {
      this.noteFailure(err);
      this.rowErrors += rows;
      return;
    }
    this.rowsWritten += rows;
    if (this.failing) {
      this.failing = false;
      this.log.info({ file: this.file, failedRows: this.rowErrors - this.failedSince }, 'feature log writes again');
    }
  }

  private noteFailure(err: Error): void {
    if (!this.failing) {
      this.failing = true;
      this.failedSince = this.rowErrors;
      this.log.error({ err, file: this.file }, 'feature log write failed; predictions go on, failed rows count in model_feature_log_errors_total');
    }
  }

  private checkExistingHeader(): void {
    if (fileSize(this.file) === 0) return;
    const expected = this.header.slice(0, -1);
    const found = firstLine(this.file);
    if (found !== expected) {
      throw new CsvHeaderMismatchError(this.file, `found "${found}", this model writes "${expected}"; pass another --csv path or move the old file`);
    }
  }
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch {
    return 0;
  }
}

function readAt(file: string, position: number, length: number): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(length);
    const n = readSync(fd, buf, 0, length, position);
    return buf.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}

const lastByte = (file: string): number | undefined => readAt(file, fileSize(file) - 1, 1)[0];
const firstLine = (file: string): string => readAt(file, 0, 64 * 1024).toString('utf8').split(/\r?\n/, 1)[0]!;
