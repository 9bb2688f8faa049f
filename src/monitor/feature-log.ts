import { createWriteStream, openSync, readSync, closeSync, statSync } from 'node:fs';
import type { Writable } from 'node:stream';
import { once } from 'node:events';
import { format } from 'fast-csv';
import type { FastifyBaseLogger } from 'fastify';
import { CsvHeaderMismatchError } from '../errors.js';
import type { FeatureLogCounts } from './metrics.js';

export type OpenSink = (file: string) => Writable;

/** How long a broken log waits before trying to reopen the file (disk freed, permission fixed). */
const REOPEN_AFTER_MS = 1000;

export function featureLogHeader(features: readonly string[]): string[] {
  return ['timestamp', 'id', 'model', 'version', 'rows', 'feature_mean', 'prediction_mean', ...features.map((f) => `${f}_mean`)];
}

interface Sink {
  csv: ReturnType<typeof format>;
  file: Writable;
  headerPending: boolean;
  broken: boolean;
}

/**
 * The CSV feature log of DESIGN.md: one writer, so rows never interleave; one row per accepted
 * request; the header only when the file is new or empty, so restarts append under one header.
 * A write failure never fails a prediction: the row is counted as an error, the failure is logged
 * once per streak, and the file is reopened on a later row.
 */
export class FeatureLog implements FeatureLogCounts {
  rowsWritten = 0;
  rowErrors = 0;
  private sink: Sink | undefined;
  private failing = false;
  private failedSince = 0;
  private lastOpenAttempt = 0;
  private readonly header: string[];

  constructor(
    readonly file: string,
    private readonly model: string,
    private readonly version: string,
    private readonly features: readonly string[],
    private readonly log: FastifyBaseLogger,
    private readonly openSink: OpenSink = (path) => createWriteStream(path, { flags: 'a' }),
  ) {
    this.header = featureLogHeader(features);
    this.checkExistingHeader();
    this.sink = this.open();
  }

  /** Appends the request's row: per-feature means over its rows, the overall feature mean, the prediction mean. */
  append(id: string, features: Float64Array, predictions: ArrayLike<number>, rows: number): void {
    const width = this.features.length;
    const featureMeans = new Array<number>(width).fill(0);
    let all = 0;
    for (let r = 0; r < rows; r++) {
      for (let f = 0; f < width; f++) featureMeans[f] += features[r * width + f]!;
    }
    for (let f = 0; f < width; f++) {
      all += featureMeans[f]!;
      featureMeans[f]! /= rows;
    }
    let predictionSum = 0;
    for (let r = 0; r < rows; r++) predictionSum += predictions[r]!;
    const row = [new Date().toISOString(), id, this.model, this.version, rows, all / (rows * width), predictionSum / rows, ...featureMeans];

    const sink = this.usableSink();
    if (!sink) {
      this.rowErrors++;
      return;
    }
    sink.csv.write(row);
  }

  /** Flushes every row written so far and closes the file. */
  async close(): Promise<void> {
    const sink = this.sink;
    this.sink = undefined;
    if (!sink || sink.broken) return;
    const ended = once(sink.csv, 'end');
    sink.csv.end();
    await ended;
    if (sink.broken) return;
    await new Promise<void>((resolve) => sink.file.end(resolve));
  }

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
    const headerPending = size === 0;
    const csv = format({ headers: this.header, writeHeaders: headerPending, includeEndRowDelimiter: true });
    const sink: Sink = { csv, file, headerPending, broken: false };
    // A crash can leave the last row without its line end; start ours on a fresh line.
    if (size > 0 && lastByte(this.file) !== 0x0a) file.write('\n');
    csv.on('data', (chunk: Buffer) => {
      const isRow = !sink.headerPending;
      sink.headerPending = false;
      file.write(chunk, (err) => (isRow ? this.settleRow(err ?? undefined) : undefined));
    });
    file.on('error', (err) => {
      sink.broken = true;
      this.noteFailure(err);
    });
    return sink;
  }

  /** Counts a row's outcome; logs only when a failure streak starts and ends. */
  private settleRow(err: Error | undefined): void {
    if (err) {
      this.noteFailure(err);
      this.rowErrors++;
      return;
    }
    this.rowsWritten++;
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
    const expected = this.header.join(',');
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
