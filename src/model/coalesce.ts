import type { Answer, CategoricalColumns } from './model.js';
import { float64Array } from './slab.js';

/** Runs `rows` rows of an in-process model at once: the rows row-major in `features`, categorical values in `categorical`. */
export type RunRows = (features: Float32Array | Float64Array, rows: number, categorical: CategoricalColumns) => Answer;

interface Job {
  features: Float32Array | Float64Array;
  rows: number;
  categorical: CategoricalColumns;
  resolve(answer: Answer): void;
  reject(err: unknown): void;
}

/**
 * Requests that arrive together run the model once. Each request's rows wait for the check
 * phase of the event loop (where onnxruntime-node defers every run anyway), and there all the
 * requests read in that turn run as one batch of up to `maxRows` rows, each answered its share:
 * on a small model a run costs about as much for one row as for a hundred, so a one-row request
 * pays for a fraction of one instead of a whole. A request larger than `maxRows` runs alone, as
 * every request does with `maxRows` 0.
 *
 * Only for a model that answers a row alike alone or among others (OnnxModel.load checks): an
 * answer never depends on which requests came with it. If a coalesced run fails, each of its
 * requests runs again alone, so a failure is only the request's own.
 */
export class Coalescer {
  private queue: Job[] = [];
  private readonly flushQueue = () => this.flush();

  constructor(
    private readonly run: RunRows,
    private readonly width: number,
    private readonly classCount: number,
    readonly maxRows: number,
  ) {}

  submit(features: Float32Array | Float64Array, rows: number, categorical: CategoricalColumns): Promise<Answer> {
    return new Promise((resolve, reject) => {
      if (this.queue.push({ features, rows, categorical, resolve, reject }) === 1) setImmediate(this.flushQueue);
    });
  }

  private flush(): void {
    const jobs = this.queue;
    this.queue = [];
    for (let start = 0; start < jobs.length; ) {
      let end = start + 1;
      let rows = jobs[start]!.rows;
      while (end < jobs.length && rows + jobs[end]!.rows <= this.maxRows) rows += jobs[end++]!.rows;
      if (end - start === 1) this.runAlone(jobs[start]!);
      else this.runTogether(jobs.slice(start, end), rows);
      start = end;
    }
  }

  private runAlone(job: Job): void {
    let answer: Answer;
    try {
      answer = this.run(job.features, job.rows, job.categorical);
    } catch (err) {
      job.reject(err);
      return;
    }
    job.resolve(answer);
  }

  private runTogether(jobs: Job[], rows: number): void {
    const { width } = this;
    const features = float64Array(rows * width);
    let at = 0;
    for (const job of jobs) {
      features.set(job.features.subarray(0, job.rows * width), at * width);
      at += job.rows;
    }
    // A categorical column is there for every request or for none: it follows from the feature, not the request.
    const categorical = jobs[0]!.categorical.map((column, f) => column && jobs.flatMap((job) => job.categorical[f]!));
    let answer: Answer;
    try {
      answer = this.run(features, rows, categorical);
    } catch {
      for (const job of jobs) this.runAlone(job);
      return;
    }
    at = 0;
    for (const job of jobs) {
      job.resolve(rowsOf(answer, at, job.rows, this.classCount));
      at += job.rows;
    }
  }
}

type InProcessArray = Float32Array | Float64Array;

/** Rows [from, from + rows) of an in-process answer (its numbers in typed arrays), without copying them. */
export function rowsOf(answer: Answer, from: number, rows: number, classCount: number): Answer {
  if (answer.task === 'regression') return { task: 'regression', values: (answer.values as InProcessArray).subarray(from, from + rows) };
  const { classes, labels, probabilities } = answer;
  const sliced: Answer = { task: 'classification', classes: classes.subarray(from, from + rows), labels: labels.slice(from, from + rows) };
  if (probabilities) sliced.probabilities = (probabilities as InProcessArray).subarray(from * classCount, (from + rows) * classCount);
  return sliced;
}
