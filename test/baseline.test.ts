import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { loadBaseline } from '../src/model/baseline.js';
import { diabetesBaseline, repoRoot, tempDir } from './helpers/app.js';

type Editable = Record<string, any>;

/**
 * Each breaks one field of the served model's baseline (or, with `whole`, replaces the file's
 * content); `raw` swaps the string "RAW" for text JSON.stringify cannot write.
 */
const broken: { name: string; edit?: (b: Editable) => unknown; whole?: unknown; raw?: string; problem: string }[] = [
  { name: 'quantiles null', edit: (b) => (b.prediction.quantiles = null), problem: 'prediction.quantiles must be object, got null' },
  { name: 'quantiles a list', edit: (b) => (b.prediction.quantiles = [1, 2]), problem: 'prediction.quantiles must be object, got [1,2]' },
  { name: 'a quantile that is a string', edit: (b) => (b.prediction.quantiles['0.5'] = 'high'), problem: 'prediction.quantiles.0.5 must be number, got "high"' },
  { name: 'no prediction', edit: (b) => delete b.prediction, problem: 'prediction is missing' },
  { name: 'prediction without stddev', edit: (b) => delete b.prediction.stddev, problem: 'prediction.stddev is missing' },
  { name: 'no abs_error_mean', edit: (b) => delete b.abs_error_mean, problem: 'abs_error_mean is missing' },
  {
    name: 'abs_error_mean 0',
    edit: (b) => (b.abs_error_mean = 0),
    problem: 'abs_error_mean must be > 0, got 0 (the MAE on held-out data, or null without a target; the abs-error buckets are multiples of it)',
  },
  {
    name: 'no held-out MAE and predictions that never vary',
    edit: (b) => Object.assign(b, { abs_error_mean: null, prediction: { ...b.prediction, stddev: 0 } }),
    problem: 'prediction.stddev is 0 and abs_error_mean null: the abs-error buckets would all be 0; build the baseline with a target',
  },
  { name: 'prediction min above max', edit: (b) => (b.prediction.min = b.prediction.max + 1), problem: `prediction.min ${diabetesBaseline.prediction.max + 1} is above prediction.max ${diabetesBaseline.prediction.max}` },
  { name: 'the file a list', whole: ['diabetes'], problem: 'the file must be object, got ["diabetes"]' },
  { name: 'an empty model name', edit: (b) => (b.model = ''), problem: 'model must NOT have fewer than 1 characters, got ""' },
  { name: 'no features', edit: (b) => (b.features = []), problem: 'features must NOT have fewer than 1 items, got []' },
  { name: 'a feature that is null', edit: (b) => (b.features[4] = null), problem: 'features[4] must be object, got null' },
  { name: 'a feature without bin_edges', edit: (b) => delete b.features[0].bin_edges, problem: 'features[0].bin_edges is missing' },
  { name: 'bin_edges null', edit: (b) => (b.features[0].bin_edges = null), problem: 'features[0].bin_edges must be array, got null' },
  { name: 'a mean of 1e400', edit: (b) => (b.features[3].mean = 'RAW'), raw: '1e400', problem: 'features[3].mean must be number, got Infinity' },
  { name: 'a negative stddev', edit: (b) => (b.features[0].stddev = -1), problem: 'features[0].stddev must be >= 0, got -1' },
  { name: 'min above max', edit: (b) => Object.assign(b.features[2], { min: 5, max: 4 }), problem: 'features[2].min 5 is above features[2].max 4' },
  { name: 'an empty name', edit: (b) => (b.features[6].name = ''), problem: 'features[6].name "" is empty' },
  { name: 'a name padded with spaces', edit: (b) => (b.features[6].name = ' bp'), problem: 'features[6].name " bp" starts or ends with white space, which CSV readers trim away' },
  { name: 'a name with a line break', edit: (b) => (b.features[6].name = 'blood\npressure'), problem: 'features[6].name "blood\\npressure" holds a control character, which no query or legend shows' },
  {
    name: 'a name with a double quote',
    edit: (b) => (b.features[6].name = 'bp "mmHg"'),
    problem: 'features[6].name "bp \\"mmHg\\"" holds a double quote, which Grafana writes unescaped into the dashboard\'s queries (feature=~"$feature")',
  },
  { name: 'the name __proto__', edit: (b) => (b.features[6].name = '__proto__'), problem: 'features[6].name "__proto__" is refused as a JSON key by the server (a guard against prototype poisoning), so no named row could hold it' },
  { name: 'the name prediction', edit: (b) => (b.features[6].name = 'prediction'), problem: "features[6].name \"prediction\" would make the feature log's column prediction_mean, which is already the mean prediction" },
  { name: 'the name feature', edit: (b) => (b.features[6].name = 'feature'), problem: "features[6].name \"feature\" would make the feature log's column feature_mean, which is already the overall feature mean" },
  { name: 'a repeated name', edit: (b) => (b.features[5].name = 'age'), problem: 'features[5].name "age" is repeated' },
  { name: 'bin_edges descending', edit: (b) => b.features[0].bin_edges.reverse(), problem: 'features[0].bin_edges must be strictly ascending' },
  { name: 'an empty training bin', edit: (b) => (b.features[2].bin_ratios[3] = 0), problem: 'features[2].bin_ratios[3] must be > 0, got 0 (an empty training bin makes PSI infinite)' },
  { name: 'one share short', edit: (b) => b.features[1].bin_ratios.pop(), problem: 'features[1].bin_ratios has 1 shares for 1 bin_edges; it needs one share more than edges' },
  { name: 'shares summing to 50', edit: (b) => (b.features[1].bin_ratios = [25, 25]), problem: 'features[1].bin_ratios sum to 50, not 1 (within 0.000001): they are shares of the training rows' },
  { name: 'shares summing to 0.999', edit: (b) => (b.features[1].bin_ratios = [0.5, 0.499]), problem: 'features[1].bin_ratios sum to 0.999, not 1 (within 0.000001): they are shares of the training rows' },
];

t.test('a broken baseline is refused with MW_ERR_BASELINE_INVALID naming the file and the field, never a TypeError', async (t) => {
  const file = join(await tempDir(t), 'baseline.json');
  for (const c of broken) {
    const b = structuredClone(diabetesBaseline) as Editable;
    c.edit?.(b);
    const text = JSON.stringify(c.whole ?? b);
    await writeFile(file, c.raw ? text.replace('"RAW"', c.raw) : text);
    await t.rejects(loadBaseline(file), { code: 'MW_ERR_BASELINE_INVALID', message: `baseline file ${file} is not usable: ${c.problem}` }, c.name);
  }
});

const irisBaseline = JSON.parse(readFileSync(join(repoRoot, 'models/iris/baseline.json'), 'utf8')) as Editable;

/** The same, for a classifier's fields. */
const brokenClassifier: { name: string; edit: (b: Editable) => unknown; problem: string | RegExp }[] = [
  { name: 'an unknown task', edit: (b) => (b.task = 'ranking'), problem: 'task must be equal to one of the allowed values, got "ranking"' },
  { name: 'no classes', edit: (b) => delete b.classes, problem: 'classes is missing' },
  { name: 'one class', edit: (b) => (b.classes = ['setosa']), problem: 'classes must NOT have fewer than 2 items, got ["setosa"]' },
  { name: 'a repeated class', edit: (b) => (b.classes = ['setosa', 'setosa', 'virginica']), problem: /^classes must NOT have duplicate items/ },
  { name: 'class shares null', edit: (b) => (b.prediction.class_shares = null), problem: 'prediction.class_shares must be array, got null' },
  { name: 'a class share of 0', edit: (b) => (b.prediction.class_shares = [0, 0.5, 0.5]), problem: 'prediction.class_shares[0] must be > 0, got 0 (a class share of 0 makes the class PSI infinite)' },
  { name: 'a share per class short', edit: (b) => (b.prediction.class_shares = [0.5, 0.5]), problem: 'prediction.class_shares has 2 shares for 3 classes; it needs one per class, in "classes" order' },
  { name: 'class shares summing to 1.5', edit: (b) => (b.prediction.class_shares = [0.5, 0.5, 0.5]), problem: 'prediction.class_shares sum to 1.5, not 1 (within 0.000001)' },
  { name: 'label shares summing to 0.9', edit: (b) => (b.label_shares = [0.3, 0.3, 0.3]), problem: /^label_shares sum to 0\.8999.*, not 1/ },
  { name: 'an accuracy of 2', edit: (b) => (b.accuracy = 2), problem: 'accuracy must be <= 1, got 2' },
  { name: 'no accuracy', edit: (b) => delete b.accuracy, problem: 'accuracy is missing' },
];

t.test('a broken classifier baseline is refused naming the field', async (t) => {
  const file = join(await tempDir(t), 'baseline.json');
  for (const c of brokenClassifier) {
    const b = structuredClone(irisBaseline);
    c.edit(b);
    await writeFile(file, JSON.stringify(b));
    const message = typeof c.problem === 'string' ? `baseline file ${file} is not usable: ${c.problem}` : new RegExp(`^baseline file ${file} is not usable: ${c.problem.source.slice(1)}`);
    await t.rejects(loadBaseline(file), { code: 'MW_ERR_BASELINE_INVALID', message }, c.name);
  }
});

t.test('a baseline within the tolerances loads', async (t) => {
  const file = join(await tempDir(t), 'baseline.json');
  const b = structuredClone(diabetesBaseline) as Editable;
  b.features[1].bin_ratios = [0.5, 0.5 + 9e-7];
  b.abs_error_mean = null;
  b.prediction.quantiles = {};
  await writeFile(file, JSON.stringify(b));
  t.same(await loadBaseline(file), b, 'shares off by 9e-7, no held-out MAE, no quantiles');
});

/** A categorical feature, as `modelwatch baseline` writes one: 2 categories, __other__ and __unseen__. */
const colour = { name: 'colour', kind: 'categorical', values: 'string', categories: ['red', 'blue'], other_categories: ['teal'], category_ratios: [0.5, 0.3, 0.15, 0.05], missing_ratio: 0.1, nullable: true };

/** The same, for a categorical feature's fields, put in place of the diabetes model's `sex`. */
const brokenCategorical: { name: string; edit: (f: Editable) => unknown; problem: string }[] = [
  { name: 'an unknown kind', edit: (f) => (f.kind = 'ordinal'), problem: 'features[1].kind must be equal to one of the allowed values, got "ordinal"' },
  { name: 'no categories', edit: (f) => delete f.categories, problem: 'features[1].categories is missing' },
  { name: 'a value type that is neither', edit: (f) => (f.values = 'float'), problem: 'features[1].values must be equal to one of the allowed values, got "float"' },
  { name: 'no share for __unseen__', edit: (f) => (f.category_ratios = [0.5, 0.3, 0.2]), problem: "features[1].category_ratios has 3 shares for 2 categories; it needs one per category, then __other__'s and __unseen__'s" },
  { name: 'a share of 0', edit: (f) => (f.category_ratios = [0.5, 0.3, 0.2, 0]), problem: 'features[1].category_ratios[3] must be > 0, got 0 (a category share of 0 makes PSI infinite)' },
  { name: 'shares summing to 2', edit: (f) => (f.category_ratios = [0.5, 0.5, 0.5, 0.5]), problem: 'features[1].category_ratios sum to 2, not 1 (within 0.000001): they are shares of the training rows' },
  { name: 'a pooled value that is a category', edit: (f) => (f.other_categories = ['red']), problem: 'features[1].other_categories repeats category "red"' },
  { name: 'a reserved name', edit: (f) => (f.categories = ['red', '__unseen__']), problem: 'features[1] names the reserved category __unseen__' },
  { name: 'integer values that are not', edit: (f) => (f.values = 'integer'), problem: 'features[1].values is "integer" but category "red" is no integer' },
  { name: 'a missing ratio of 2', edit: (f) => (f.missing_ratio = 2), problem: 'features[1].missing_ratio must be <= 1, got 2' },
  { name: 'nullable as text', edit: (f) => (f.nullable = 'yes'), problem: 'features[1].nullable must be boolean, got "yes"' },
];

t.test('a categorical feature loads, and a broken one is refused naming the field', async (t) => {
  const file = join(await tempDir(t), 'baseline.json');
  const withColour = () => {
    const b = structuredClone(diabetesBaseline) as Editable;
    b.features[1] = structuredClone(colour);
    return b;
  };
  await writeFile(file, JSON.stringify(withColour()));
  t.same((await loadBaseline(file)).features[1], colour);
  for (const c of brokenCategorical) {
    const b = withColour();
    c.edit(b.features[1]);
    await writeFile(file, JSON.stringify(b));
    await t.rejects(loadBaseline(file), { code: 'MW_ERR_BASELINE_INVALID', message: `baseline file ${file} is not usable: ${c.problem}` }, c.name);
  }
});
