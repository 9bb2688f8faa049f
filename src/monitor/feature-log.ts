import { close, closeSync, fstat, ftruncate, open, openSync, read, readSync, stat, statSync, write, type Stats } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { FastifyBaseLogger } from 'fastify';
import { ConfigInvalidError, CsvHeaderMismatchError, DataInvalidError } from '../errors.js';
import { isCategorical, type FeatureBaseline } from '../model/baseline.js';
import { withinFloat32 } from './float32.js';
import type { FeatureLogCounts } from './metrics.js';
import { RateLimitedWarn } from './rate-limited-log.js';

/**
 * The file operations of the log. Fault tests replace some of them to cause what a test running
 * as root cannot cause for real: EACCES, EROFS, a disk that fills up part-way through a write.
 */
export interface LogFs {
  /** Opens for appending, and for reading the last byte; creates the file. */
  open(path: string): Promise<number>;
  /** Appends bytes [offset, offset + length) of data; resolves to how many reached the file. */
  write(fd: number, data: Buffer, offset: number, length: number): Promise<number>;
  read(fd: number, position: number, length: number): Promise<Buffer>;
  fstat(fd: number): Promise<Stats>;
  stat(path: string): Promise<Stats>;
  /** Empties the file. */
  truncate(fd: number): Promise<void>;
  close(fd: number): Promise<void>;
}

// Promisified once: promisify builds a new function each time it is called.
const openAsync = promisify(open);
const writeAsync = promisify(write);
const readAsync = promisify(read);
const fstatAsync = promisify(fstat);
const statAsync = promisify(stat);
const ftruncateAsync = promisify(ftruncate);
const closeAsync = promisify(close);
export const nodeLogFs: LogFs = {
  open: (path) => openAsync(path, 'a+'),
  write: async (fd, data, offset, length) => (await writeAsync(fd, data, offset, length, null)).bytesWritten,
  read: async (fd, position, length) => {
    const { buffer, bytesRead } = await readAsync(fd, Buffer.alloc(length), 0, length, position);
    return buffer.subarray(0, bytesRead);
  },
  fstat: (fd) => fstatAsync(fd),
  stat: (path) => statAsync(path),
  truncate: (fd) => ftruncateAsync(fd, 0),
  close: (fd) => closeAsync(fd),
};

export interface FeatureLogOptions {
  /** Replaces file operations, for fault tests. */
  fs?: Partial<LogFs>;
  /** How often the path is checked for rotation; tests lengthen it to see what a write alone notices. */
  checkEveryMs?: number;
}

/** How long a broken log waits before trying to reopen the file (disk freed, permission fixed). */
const REOPEN_AFTER_MS = 1000;
/**
 * Rows wait up to FLUSH_MS, or until FLUSH_BYTES are pending, then go out in one write: a write
 * per request would cost a syscall on libuv's pool for every prediction. A crash can lose at most
 * these milliseconds of rows and the write in flight; a shutdown loses none (close() flushes).
 */
const FLUSH_MS = 20;
const FLUSH_BYTES = 64 * 1024;
/** The pending rows' buffers to start with: a flush's worth and room for the row that passes it. */
const PENDING_BUFFER_BYTES = 2 * FLUSH_BYTES;
/**
 * How often the path is stat'ed to notice a rotation by itself (mv, rm, copytruncate) when no
 * SIGHUP comes: one syscall a second, off the request path.
 */
const CHECK_EVERY_MS = 1000;
/**
 * Ends a row torn by a crash or a write that failed part-way. The comma makes the torn line
 * malformed whichever field it was cut in (one field too many, an empty feature mean, or too few
 * fields), so check-csv skips it instead of reading a cut number as data.
 */
const TORN_ROW_END = ',\n';
/** Failure lines a minute at most: a log that fails and recovers every second must not flood stdout. */
const FAILURE_LOGS_PER_MINUTE = 10;

/**
 * The log's columns, given the names of the numeric features (a categorical feature has no mean);
 * a classifier's rows end with the count of the request's rows predicted as each class.
 */
export function featureLogHeader(features: readonly string[], classes: readonly string[] = []): string[] {
  return ['timestamp', 'id', 'model', 'version', 'rows', 'feature_mean', 'prediction_mean', ...features.map((f) => `${f}_mean`), ...classes.map(classCountColumn)];
}

export const classCountColumn = (cls: string) => `class_${cls}_count`;

/**
 * One CSV field as fast-csv writes it (RFC 4180): quoted when it holds a quote, comma or line
 * break, quotes doubled, NUL dropped. Numbers, ISO timestamps and UUIDs never need it.
 */
export function csvField(value: string): string {
  const field = value.replace(/\0/g, '');
  return /[",\r\n]/.test(field) ? `"${field.replace(/"/g, '""')}"` : field;
}

/** The file the log writes to now. */
interface OpenFile {
  fd: number;
  ino: number;
  dev: number;
  /** Rotation checks apply to regular files only: /dev/full or a pipe has no size to compare. */
  regular: boolean;
  /** What its size should be: its size when opened plus every byte written since. */
  size: number;
  headerPending: boolean;
  tornRow: boolean;
}

/**
 * The CSV feature log of docs/feature-log.md: one writer, so rows never interleave; one row per accepted
 * request; the header only when the file is new or empty, so restarts append under one header.
 * A write failure never fails a prediction: the row is counted as an error, the failure is logged
 * (rate-limited), and the file is reopened a second later.
 *
 * Rotation: reopen() (SIGHUP) finishes the pending rows in the old file and opens the path anew;
 * a stat of the path every second notices by itself a file moved away, deleted or truncated; and
 * an fstat after each write notices a file deleted or truncated under it. A row counts as written
 * only when it is whole in a file that still has a name; rows written to a deleted file are lost.
 *
 * Rows are formatted here rather than through a fast-csv stream, whose per-row stream machinery
 * and per-field escaping cost several microseconds a request, more than all the other monitoring;
 * the output is byte for byte what fast-csv writes (the text fields are escaped as it does, once),
 * and check-csv still reads it with fast-csv.
 */
export class FeatureLog implements FeatureLogCounts {
  rowsWritten = 0;
  private rowsAppended = 0;
  rowErrors = 0;
  rowsLost = 0;
  private readonly fs: LogFs;
  private current: OpenFile | undefined;
  /** No open attempt before this time after a failure. */
  private retryAt = 0;
  private closed = false;
  private failing = false;
  private failedSince = 0;
  private failureCode: string | undefined;
  private readonly failureLog: RateLimitedWarn;
  /** When the file task in progress began (performance.now()), or NaN: a shutdown tells a stuck write by it. */
  private taskStartedAt = Number.NaN;
  /** File operations run one at a time, in order: rows never interleave, a reopen never races a write. */
  private queue: Promise<void> = Promise.resolve();
  private writeQueued = false;
  private checkQueued = false;
  private readonly checkTimer: NodeJS.Timeout;
  private readonly header: string;
  /** `,model,version,`: the same in every row, escaped once. */
  private readonly between: string;
  /** Line ends in one row: one, plus any inside a quoted model name or version. */
  private readonly lineEndsPerRow: number;
  /** Scratch for one row's feature sums, reused: append runs once per accepted request. */
  private readonly means: Float64Array;
  /** Scratch for how many of the request's rows had each feature (not missing). */
  private readonly present: Float64Array;
  /** The index in a row of each logged (numeric) feature, and the row's width. */
  private readonly columns: Int32Array;
  private readonly width: number;
  /** Scratch for one row's class counts, reused. */
  private readonly classCounts: Int32Array;
  /**
   * Rows appended since the last write, as UTF-8 in `pending[0, pendingBytes)`. Each row is written
   * into it as it comes, so its strings die young: a pending string of 20 ms of rows (thousands of
   * pieces) was alive at most scavenges and copied by each, 0.75 against 0.96 ms a scavenge with
   * the buffer under the same load. A write takes the bytes of one buffer while rows go into the
   * other (`spare`): writes run one at a time, so the two never overlap.
   */
  private pending = Buffer.allocUnsafe(PENDING_BUFFER_BYTES);
  private spare = Buffer.allocUnsafe(PENDING_BUFFER_BYTES);
  private pendingBytes = 0;
  private pendingRows = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  /** The ISO timestamp of the last row's millisecond: under load many rows share one. */
  private stampMs = -1;
  private stamp = '';

  constructor(
    readonly file: string,
    model: string,
    version: string,
    features: readonly FeatureBaseline[],
    classes: readonly string[],
    private readonly log: FastifyBaseLogger,
    options: FeatureLogOptions = {},
  ) {
    const logged = features.filter((f) => !isCategorical(f));
    this.header = `${featureLogHeader(logged.map((f) => f.name), classes).map(csvField).join(',')}\n`;
    this.columns = Int32Array.from(logged, (f) => features.indexOf(f));
    this.width = features.length;
    this.present = new Float64Array(logged.length);
    this.classCounts = new Int32Array(classes.length);
    this.between = `,${csvField(model)},${csvField(version)},`;
    this.lineEndsPerRow = this.between.split('\n').length;
    this.means = new Float64Array(logged.length);
    this.fs = { ...nodeLogFs, ...options.fs };
    this.failureLog = new RateLimitedWarn(log, FAILURE_LOGS_PER_MINUTE);
    this.checkAtStartup();
    // Opened now rather than at the first row: the file exists from start-up (simulate counts its
    // rows before it sends any), and a path that cannot be opened is reported before traffic comes.
    void this.enqueue(async () => {
      this.current ??= await this.openFile(0);
    });
    this.checkTimer = setInterval(this.scheduleCheck, options.checkEveryMs ?? CHECK_EVERY_MS).unref();
  }

  /**
   * Appends the request's row: per numeric feature the mean over the rows that have it (empty when
   * none has), the overall mean of those values, the prediction mean and, for a classifier, how
   * many rows were predicted as each class (`classes` holds each row's class index; a row of no
   * known class counts in none).
   */
  append(id: string, features: Float64Array, predictions: ArrayLike<number>, rows: number, classes?: ArrayLike<number>, tag = this.between): void {
    const { width, columns } = this;
    const logged = columns.length;
    const featureMeans = this.means.fill(0);
    const present = this.present.fill(0);
    let all = 0;
    let values = 0;
    for (let r = 0; r < rows; r++) {
      for (let f = 0; f < logged; f++) {
        const v = features[r * width + columns[f]!]!;
        if (v !== v) continue;
        featureMeans[f] += v;
        present[f]!++;
      }
    }
    for (let f = 0; f < logged; f++) {
      all += featureMeans[f]!;
      values += present[f]!;
      featureMeans[f]! /= present[f]!;
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
    let line = `${this.stamp},${id}${tag}${rows},${values === 0 ? '' : all / values},${predicted === 0 ? '' : predictionSum / predicted}`;
    for (let f = 0; f < logged; f++) line += present[f] === 0 ? ',' : `,${featureMeans[f]}`;
    if (classes) {
      const counts = this.classCounts.fill(0);
      for (let r = 0; r < rows; r++) if (classes[r]! >= 0) counts[classes[r]!]!++;
      for (let c = 0; c < counts.length; c++) line += `,${counts[c]}`;
    }

    this.rowsAppended++;
    if (this.closed || (this.current === undefined && now < this.retryAt)) {
      this.rowErrors++;
      return;
    }
    this.queueBytes(`${line}\n`);
    this.pendingRows++;
    if (this.pendingBytes >= FLUSH_BYTES) this.flush();
    else this.flushTimer ??= setTimeout(this.flush, FLUSH_MS);
  }

  /**
   * The model and version columns of another version's rows, for append: every version served
   * writes through this one writer, so rows never interleave. Refused when they hold another
   * number of line breaks, by which whole rows are counted.
   */
  tag(model: string, version: string): string {
    const tag = `,${csvField(model)},${csvField(version)},`;
    if (tag.split('\n').length !== this.lineEndsPerRow) throw new DataInvalidError(`version ${JSON.stringify(version)}`, 'the feature log counts rows by line breaks; a version name with a line break where the other has none cannot share it');
    return tag;
  }

  /**
   * What logrotate's postrotate SIGHUP asks for: the rows appended so far go to the file open now,
   * later rows to the path opened anew (with a header when it is new or empty). After a failure it
   * retries at once rather than a second later.
   */
  reopen(): Promise<void> {
    this.retryAt = 0;
    return this.enqueue(async () => {
      await this.writePending();
      await this.closeFile();
    });
  }

  /**
   * How long the file task in progress (an open, a write, a stat, a close) has taken, 0 with none:
   * one stuck in the kernel (a pipe no one reads, a hung NFS mount) never ends.
   */
  fileTaskMs(): number {
    return Number.isNaN(this.taskStartedAt) ? 0 : performance.now() - this.taskStartedAt;
  }

  /** Rows appended and not yet settled as written, failed or lost: what a process killed now loses. */
  get rowsUnwritten(): number {
    return this.rowsAppended - this.rowsWritten - this.rowErrors - this.rowsLost;
  }

  /** Writes every row appended so far and closes the file. */
  async close(): Promise<void> {
    clearInterval(this.checkTimer);
    clearTimeout(this.flushTimer);
    this.closed = true;
    await this.enqueue(async () => {
      await this.writePending();
      await this.closeFile();
    });
  }

  private enqueue(task: () => Promise<void>): Promise<void> {
    // Every task settles its own rows; the catch keeps an unexpected failure from being an unhandled rejection.
    const timed = async () => {
      this.taskStartedAt = performance.now();
      try {
        await task();
      } finally {
        this.taskStartedAt = Number.NaN;
      }
    };
    this.queue = this.queue.then(timed).catch((err: Error) => this.noteFailure(err));
    return this.queue;
  }

  /** Appends `text` to the pending bytes, growing the buffers when a row would not fit. */
  private queueBytes(text: string): void {
    // Three bytes of UTF-8 at most per UTF-16 code unit.
    const needed = this.pendingBytes + text.length * 3;
    if (needed > this.pending.length) {
      const size = Math.max(needed, this.pending.length * 2);
      const grown = Buffer.allocUnsafe(size);
      this.pending.copy(grown, 0, 0, this.pendingBytes);
      this.pending = grown;
      this.spare = Buffer.allocUnsafe(size);
    }
    this.pendingBytes += this.pending.write(text, this.pendingBytes);
  }

  private readonly flush = (): void => {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.writeQueued || this.pendingRows === 0) return;
    this.writeQueued = true;
    void this.enqueue(this.writePending);
  };

  private readonly scheduleCheck = (): void => {
    if (this.checkQueued) return;
    this.checkQueued = true;
    void this.enqueue(this.checkPath);
  };

  /** Writes the pending rows in one write, opening the path first when no file is open. */
  private readonly writePending = async (): Promise<void> => {
    this.writeQueued = false;
    const rows = this.pendingRows;
    if (rows === 0) return;
    const chunk = this.pending.subarray(0, this.pendingBytes);
    [this.pending, this.spare] = [this.spare, this.pending];
    this.pendingBytes = 0;
    this.pendingRows = 0;
    const file = this.current ?? (await this.openFile(rows));
    if (!file) return;
    if (!(await this.writeRows(file, chunk, rows))) return;
    try {
      await this.settle(file, chunk, rows);
    } catch (err) {
      // The rows reached the file, but what became of the file is unknown.
      this.noteFailure(err as Error);
      this.rowErrors += rows;
      await this.closeFile(REOPEN_AFTER_MS);
    }
  };

  /** Counts rows just written: written when their file still has a name and holds them, else lost or written again. */
  private async settle(file: OpenFile, chunk: Buffer, rows: number): Promise<void> {
    const after = await this.fs.fstat(file.fd);
    if (after.nlink === 0) {
      this.rowsLost += rows;
      this.failureLog.error({ file: this.file, rows }, 'feature log file was deleted; rows written to it are lost (model_feature_log_lost_rows_total), the path is opened anew');
      await this.closeFile();
      return;
    }
    if (file.regular && after.size < file.size) {
      // copytruncate emptied the file: after this write it holds nothing of ours, or this write at
      // its start without a header. Either way the rows are written again, under a header.
      if (after.size > 0) await this.fs.truncate(file.fd);
      this.log.info({ file: this.file, reason: 'truncated' }, 'feature log reopened');
      await this.closeFile();
      // Before the rows appended since: a new buffer, as `chunk` lies in the spare one.
      this.pending = Buffer.concat([chunk, this.pending.subarray(0, this.pendingBytes)], chunk.length + this.pending.length);
      this.pendingBytes += chunk.length;
      this.pendingRows += rows;
      this.flush();
      return;
    }
    this.rowsWritten += rows;
    if (this.failing) {
      this.failing = false;
      this.failureCode = undefined;
      this.log.info({ file: this.file, failedRows: this.rowErrors - this.failedSince }, 'feature log writes again');
    }
  }

  /**
   * Appends the rows, after a header or a torn row's end when due. When the write fails part-way
   * (a disk that fills up), the rows that reached the file whole count as written, the rest as errors.
   */
  private async writeRows(file: OpenFile, chunk: Buffer, rows: number): Promise<boolean> {
    const prefix = `${file.tornRow ? TORN_ROW_END : ''}${file.headerPending ? this.header : ''}`;
    const data = prefix === '' ? chunk : Buffer.concat([Buffer.from(prefix), chunk]);
    let done = 0;
    try {
      while (done < data.length) done += await this.fs.write(file.fd, data, done, data.length - done);
    } catch (err) {
      this.noteFailure(err as Error);
      const start = Buffer.byteLength(prefix);
      const whole = done <= start ? 0 : Math.floor(countLineEnds(data, start, done) / this.lineEndsPerRow);
      this.rowsWritten += whole;
      this.rowErrors += rows - whole;
      await this.closeFile(REOPEN_AFTER_MS);
      return false;
    }
    file.size += data.length;
    file.headerPending = false;
    file.tornRow = false;
    return true;
  }

  /** Opens the path: a header is due when the file is new or empty, a torn row's end when its last line lacks one. */
  private async openFile(rows: number): Promise<OpenFile | undefined> {
    if (Date.now() < this.retryAt) {
      this.rowErrors += rows;
      return undefined;
    }
    let fd: number | undefined;
    try {
      fd = await this.fs.open(this.file);
      const st = await this.fs.fstat(fd);
      const tornRow = st.size > 0 && (await this.fs.read(fd, st.size - 1, 1))[0] !== 0x0a;
      this.current = { fd, ino: st.ino, dev: st.dev, regular: st.isFile(), size: st.size, headerPending: st.size === 0, tornRow };
      return this.current;
    } catch (err) {
      this.noteFailure(err as Error);
      this.rowErrors += rows;
      if (fd !== undefined) await this.fs.close(fd).catch(() => undefined);
      this.retryAt = Date.now() + REOPEN_AFTER_MS;
      return undefined;
    }
  }

  /** Closes the file; the next write opens the path anew, at once or after `retryAfterMs`. */
  private async closeFile(retryAfterMs = 0): Promise<void> {
    const file = this.current;
    this.current = undefined;
    if (retryAfterMs > 0) this.retryAt = Date.now() + retryAfterMs;
    if (!file) return;
    try {
      await this.fs.close(file.fd);
    } catch (err) {
      this.noteFailure(err as Error);
    }
  }

  /** Notices a rotation that sent no SIGHUP: the path names another file or none, or the file is shorter than written. */
  private readonly checkPath = async (): Promise<void> => {
    this.checkQueued = false;
    const file = this.current;
    if (!file?.regular) return;
    const st = await this.fs.stat(this.file).catch(() => undefined);
    const reason = !st ? 'gone' : st.ino !== file.ino || st.dev !== file.dev ? 'replaced' : st.size < file.size ? 'truncated' : undefined;
    if (!reason) return;
    this.log.info({ file: this.file, reason }, 'feature log reopened');
    await this.closeFile();
  };

  /** Logs a failure when a streak starts or its cause changes, rate-limited; predictions go on. */
  private noteFailure(err: Error): void {
    const { code } = err as NodeJS.ErrnoException;
    if (!this.failing) this.failedSince = this.rowErrors;
    if (!this.failing || code !== this.failureCode) {
      this.failureLog.error({ err, file: this.file }, 'feature log write failed; predictions go on, failed rows count in model_feature_log_errors_total');
    }
    this.failing = true;
    this.failureCode = code;
  }

  /** A directory or another model's log is refused before the server starts; a missing one is created later. */
  private checkAtStartup(): void {
    let st: Stats | undefined;
    try {
      st = statSync(this.file);
    } catch {
      // No file, or no folder for it: the first write reports why, and retries.
    }
    if (st?.isDirectory()) {
      throw new ConfigInvalidError(`--csv / MODELWATCH_CSV = ${JSON.stringify(this.file)}`, `is a directory; name a file in it, such as ${join(this.file, 'feature_log.csv')}`);
    }
    if (!st || st.size === 0) return;
    const expected = this.header.slice(0, -1);
    const found = firstLine(this.file);
    if (found !== expected) {
      throw new CsvHeaderMismatchError(this.file, `found "${found}", this model writes "${expected}"; pass another --csv path or move the old file`);
    }
  }
}

function countLineEnds(data: Buffer, start: number, end: number): number {
  let n = 0;
  for (let i = data.indexOf(0x0a, start); i !== -1 && i < end; i = data.indexOf(0x0a, i + 1)) n++;
  return n;
}

function firstLine(file: string): string {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return buf.subarray(0, n).toString('utf8').split(/\r?\n/, 1)[0]!;
  } finally {
    closeSync(fd);
  }
}
