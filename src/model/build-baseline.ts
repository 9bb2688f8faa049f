import { basename, dirname, resolve } from 'node:path';
import { DataInvalidError } from '../errors.js';
import type { Baseline, FeatureBaseline } from './baseline.js';
import { readNumericCsv } from './csv-rows.js';
import { OnnxModel } from './session.js';
import { mulberry32 } from '../random.js';

export interface BaselineOptions {
  data: string;
  modelFile: string;
  /** Column holding the true value; excluded from the features. */
  target?: string;
  /** Held-out CSV (same columns) for abs_error_mean; without it the MAE is measured on `data`. */
  evalData?: string;
  name?: string;
  version?: string;
  bins?: number;
  /** Values kept per column for the quantiles; beyond it a uniform reservoir sample keeps memory bounded. */
  sampleSize?: number;
}

const PREDICTION_QUANTILES = [0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99];
const BATCH_ROWS = 1024;

/** Mean and variance in one pass (Welford), min, max and a reservoir sample for quantiles. */
class ColumnStats {
  n = 0;
  mean = 0;
  private m2 = 0;
  min = Infinity;
  max = -Infinity;
  readonly sample: number[] = [];

  constructor(
    private readonly sampleSize: number,
    private readonly random: () => number,
  ) {}

  add(v: number): void {
    this.n++;
    const delta = v - this.mean;
    this.mean += delta / this.n;
    this.m2 += delta * (v - this.mean);
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
    if (this.sample.length < this.sampleSize) this.sample.push(v);
    else {
      const j = Math.floor(this.random() * this.n);
      if (j < this.sampleSize) this.sample[j] = v;
    }
  }

  /** Population standard deviation. */
  get stddev(): number {
    return this.n === 0 ? 0 : Math.sqrt(this.m2 / this.n);
  }

  /** Inverse-CDF quantile (the smallest sampled value with at least q of the values at or below it). */
  quantiles(qs: readonly number[]): number[] {
    const sorted = Float64Array.from(this.sample).sort();
    return qs.map((q) => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!);
  }
}

/**
 * Inner quantile edges for `bins` bins. Ties collapse edges, and an edge at the minimum would
 * make an always-empty first bin, so both go (the binary `sex` feature ends with one edge).
 */
function binEdges(stats: ColumnStats, bins: number): number[] {
  const qs = Array.from({ length: bins - 1 }, (_, i) => (i + 1) / bins);
  return [...new Set(stats.quantiles(qs))].filter((edge) => edge > stats.min).sort((x, y) => x - y);
}

async function* batches(file: string, featureColumns: number[], targetColumn: number | undefined) {
  const { rows } = await readNumericCsv(file);
  const width = featureColumns.length;
  let features = new Float32Array(BATCH_ROWS * width);
  let targets = new Float64Array(BATCH_ROWS);
  let raw: Float64Array[] = [];
  for await (const { values } of rows) {
    const r = raw.length;
    for (let f = 0; f < width; f++) features[r * width + f] = values[featureColumns[f]!]!;
    if (targetColumn !== undefined) targets[r] = values[targetColumn]!;
    raw.push(Float64Array.from(featureColumns, (c) => values[c]!));
    if (raw.length === BATCH_ROWS) {
      yield { features, targets, raw, rows: raw.length };
      features = new Float32Array(BATCH_ROWS * width);
      targets = new Float64Array(BATCH_ROWS);
      raw = [];
    }
  }
  if (raw.length > 0) yield { features, targets, raw, rows: raw.length };
}

async function layout(file: string, target: string | undefined) {
  const { columns, rows } = await readNumericCsv(file);
  await rows.return(undefined);
  const targetColumn = target === undefined ? undefined : columns.indexOf(target);
  if (targetColumn === -1) throw new DataInvalidError(file, `has no target column "${target}"; its columns are ${columns.join(', ')}`);
  const featureColumns = columns.map((_, i) => i).filter((i) => i !== targetColumn);
  return { names: featureColumns.map((i) => columns[i]!), featureColumns, targetColumn };
}

/** Reads the training CSV twice, streaming: stats and edges first, then the exact bin shares. */
export async function buildBaseline(options: BaselineOptions): Promise<Baseline> {
  const bins = options.bins ?? 10;
  const sampleSize = options.sampleSize ?? 100_000;
  const { names, featureColumns, targetColumn } = await layout(options.data, options.target);
  const width = names.length;
  // The model's declared input width is checked against the header's feature columns here.
  const model = await OnnxModel.load(options.modelFile, width, {
    name: `the header (line 1) of ${options.data}`,
    fix: `its feature columns (every column but --target) are ${names.join(', ')}`,
  });
  try {
    const random = mulberry32(42);
    const featureStats = names.map(() => new ColumnStats(sampleSize, random));
    const predictionStats = new ColumnStats(sampleSize, random);
    let scalarSum = 0;
    for await (const batch of batches(options.data, featureColumns, targetColumn)) {
      const predictions = await model.predict(batch.features.subarray(0, batch.rows * width), batch.rows);
      for (const row of batch.raw) {
        row.forEach((v, f) => {
          featureStats[f]!.add(v);
          scalarSum += v;
        });
      }
      for (let r = 0; r < batch.rows; r++) predictionStats.add(predictions[r]!);
    }
    const rows = predictionStats.n;
    if (rows === 0) throw new DataInvalidError(options.data, 'has a header but no rows');

    const edges = featureStats.map((s) => binEdges(s, bins));
    const counts = edges.map((e) => new Float64Array(e.length + 1));
    for await (const batch of batches(options.data, featureColumns, undefined)) {
      for (const row of batch.raw) {
        row.forEach((v, f) => {
          let i = 0;
          while (i < edges[f]!.length && v >= edges[f]![i]!) i++;
          counts[f]![i]!++;
        });
      }
    }

    let absErrorMean: number | null = null;
    if (targetColumn !== undefined) {
      const evalFile = options.evalData ?? options.data;
      const evalLayout = await layout(evalFile, options.target);
      if (evalLayout.names.join(',') !== names.join(',')) {
        throw new DataInvalidError(evalFile, `feature columns ${evalLayout.names.join(', ')} differ from ${options.data}'s ${names.join(', ')}`);
      }
      let errorSum = 0;
      let n = 0;
      for await (const batch of batches(evalFile, evalLayout.featureColumns, evalLayout.targetColumn)) {
        const predictions = await model.predict(batch.features.subarray(0, batch.rows * width), batch.rows);
        for (let r = 0; r < batch.rows; r++) errorSum += Math.abs(predictions[r]! - batch.targets[r]!);
        n += batch.rows;
      }
      absErrorMean = n === 0 ? null : errorSum / n;
    }

    const features: FeatureBaseline[] = names.map((name, f) => {
      const s = featureStats[f]!;
      return { name, mean: s.mean, stddev: s.stddev, min: s.min, max: s.max, bin_edges: edges[f]!, bin_ratios: Array.from(counts[f]!, (c) => c / rows) };
    });
    const predictionQuantiles = predictionStats.quantiles(PREDICTION_QUANTILES);
    return {
      model: options.name ?? basename(dirname(resolve(options.modelFile))),
      version: options.version ?? '1',
      rows,
      features,
      prediction: {
        mean: predictionStats.mean,
        stddev: predictionStats.stddev,
        min: predictionStats.min,
        max: predictionStats.max,
        quantiles: Object.fromEntries(PREDICTION_QUANTILES.map((q, i) => [String(q), predictionQuantiles[i]!])),
      },
      scalar_feature_mean: scalarSum / (rows * width),
      abs_error_mean: absErrorMean,
    };
  } finally {
    await model.close();
  }
}
