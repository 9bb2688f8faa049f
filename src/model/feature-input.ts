import { isCategorical, OTHER_CATEGORY, UNSEEN_CATEGORY, type Baseline, type CategoricalFeatureBaseline } from './baseline.js';
import type { CategoricalColumns } from './model.js';
import type { InputType } from './session.js';

/** What a request may send for one feature, from the baseline and, in-process, the model's input type. */
export interface FeatureSpec {
  name: string;
  /** number: any float32 value; integer: an int64 input's, numeric or categorical; string: a categorical feature of strings. */
  json: 'number' | 'integer' | 'string';
  nullable: boolean;
  categorical: boolean;
}

export function featureSpecs(baseline: Baseline, inputTypes: readonly InputType[] | undefined): FeatureSpec[] {
  return baseline.features.map((f, i) => {
    const categorical = isCategorical(f);
    const json = categorical ? (f.values === 'string' ? 'string' : 'integer') : inputTypes?.[i] === 'int64' ? 'integer' : 'number';
    return { name: f.name, json, nullable: f.nullable === true, categorical };
  });
}

/** A categorical feature's buckets in code order: its categories, then __other__ and __unseen__. */
export const categoryBuckets = (f: CategoricalFeatureBaseline): string[] => [...f.categories, OTHER_CATEGORY, UNSEEN_CATEGORY];

/**
 * Turns each categorical value into its bucket's code once, where the request is read, so the
 * monitor counts codes in typed arrays: a category's index, the categories' count for a value
 * pooled in training (__other__), one more for a value never seen there (__unseen__). A JSON
 * integer and the category text of an int64 feature meet as String(v): categories are text.
 */
export class CategoryCodes {
  private readonly codes: (Map<string, number> | undefined)[];
  private readonly unseen: Int32Array;
  /** Whether any feature is categorical: without one, rows are read on the plain numeric path. */
  readonly any: boolean;

  constructor(baseline: Baseline) {
    this.codes = baseline.features.map((f) => {
      if (!isCategorical(f)) return undefined;
      const k = f.categories.length;
      return new Map([...f.categories.map((c, i) => [c, i] as const), ...f.other_categories.map((c) => [c, k] as const)]);
    });
    this.unseen = Int32Array.from(baseline.features, (f) => (isCategorical(f) ? f.categories.length + 1 : -1));
    this.any = this.codes.some((c) => c !== undefined);
  }

  /** Whether feature `f` is categorical. */
  has(f: number): boolean {
    return this.codes[f] !== undefined;
  }

  /** The code of value `v` of categorical feature `f`; NaN for a missing one. */
  code(f: number, v: string | number | null): number {
    if (v === null) return Number.NaN;
    return this.codes[f]!.get(typeof v === 'string' ? v : String(v)) ?? this.unseen[f]!;
  }
}

/** A request's rows as the model and the monitor take them. */
export interface ReadRows {
  /** rows × features, row-major: numeric values as sent (NaN: missing), categorical ones as codes. */
  values: Float64Array;
  categorical: CategoricalColumns;
}

/** Empty value columns for each categorical feature of `rows` rows, filled as the request is read. */
export function categoricalColumns(codes: CategoryCodes, width: number, rows: number): ((string | number | null)[] | undefined)[] {
  if (!codes.any) return [];
  const columns = new Array<(string | number | null)[] | undefined>(width);
  for (let f = 0; f < width; f++) columns[f] = codes.has(f) ? new Array<string | number | null>(rows) : undefined;
  return columns;
}
