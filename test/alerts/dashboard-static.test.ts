// The Grafana dashboard, checked as a file: the variables and rows the issue asks for, every
// panel with a title, description and unit, every range vector on $__rate_interval, every
// modelwatch selector filtered by the dashboard variables, and every query valid PromQL (parsed
// by the real promtool, with the variables substituted). The queries against a live Prometheus
// are checked by the integration tests.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dump } from 'js-yaml';
import t from 'tap';
import { requireBinary, runBinary } from '../helpers/binaries.js';

const root = fileURLToPath(new URL('../../', import.meta.url));

interface Target {
  expr?: string;
  refId: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id: number;
  type: string;
  title?: string;
  description?: string;
  datasource?: { type?: string; uid?: string };
  gridPos?: { h: number; w: number; x: number; y: number };
  fieldConfig?: { defaults?: { unit?: string } };
  targets?: Target[];
  panels?: Panel[];
  repeat?: string;
}
interface Variable {
  name: string;
  type: string;
  query?: string | { query?: string };
  definition?: string;
  datasource?: { uid?: string };
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: Variable[] };
}

const dashboard = JSON.parse(await readFile(join(root, 'grafana', 'dashboards', 'modelwatch.json'), 'utf8')) as Dashboard;

/** Top-level panels plus those nested in collapsed rows, in order. */
const allPanels: Panel[] = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const rows = allPanels.filter((p) => p.type === 'row');
const vizPanels = allPanels.filter((p) => p.type !== 'row');
const queries = vizPanels.flatMap((p) => (p.targets ?? []).map((q) => ({ panel: p, expr: q.expr ?? '', target: q })));

/** The row each panel sits under (by position in the panel list). */
function rowOf(panel: Panel): string | undefined {
  let current: string | undefined;
  for (const p of allPanels) {
    if (p.type === 'row') current = p.title;
    if (p === panel) return current;
  }
  return undefined;
}

t.test('variables: datasource, job, instance, model, version, feature', async (t) => {
  const vars = dashboard.templating.list;
  t.same(
    vars.map((v) => v.name),
    ['datasource', 'job', 'instance', 'model', 'version', 'feature'],
  );
  t.equal(vars[0]!.type, 'datasource');
  t.equal(vars[0]!.query, 'prometheus');
  for (const v of vars.slice(1)) {
    t.equal(v.type, 'query', `${v.name} is a query variable`);
    t.equal(v.datasource?.uid, '${datasource}', `${v.name} queries the selected datasource`);
    const q = typeof v.query === 'string' ? v.query : v.query?.query;
    t.match(q, new RegExp(`^label_values\\(.*,\\s*${v.name}\\)$`), `${v.name} lists label values of ${v.name}`);
  }
  // Each variable narrows by the ones before it (job -> instance -> model -> version -> feature).
  const chain = ['job', 'instance', 'model', 'version'];
  chain.forEach((name, i) => {
    for (const later of [...chain.slice(i + 1), 'feature']) {
      const v = vars.find((x) => x.name === later)!;
      const q = typeof v.query === 'string' ? v.query : v.query?.query ?? '';
      t.match(q, `${name}=~"$${name}"`, `${later} is filtered by $${name}`);
    }
  });
});

t.test('rows', async (t) => {
  t.same(
    rows.map((r) => r.title),
    ['Traffic and health', 'Predictions', 'Classification', 'Features', 'Distribution drift', 'Ground truth', 'Rollout: candidate vs primary', 'Firing alerts'],
  );
});

t.test('every panel has a title, a description, a unit and a datasource', async (t) => {
  t.ok(vizPanels.length >= 12, `${vizPanels.length} panels`);
  const ids = allPanels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  for (const p of vizPanels) {
    t.ok(p.title && p.title.trim().length > 0, `panel ${p.id} has a title`);
    t.ok(p.description && p.description.trim().length >= 20, `"${p.title}" has a description`);
    t.ok(p.fieldConfig?.defaults?.unit, `"${p.title}" has a unit (fieldConfig.defaults.unit)`);
    t.equal(p.datasource?.uid, '${datasource}', `"${p.title}" uses $datasource`);
    t.ok(p.gridPos && p.gridPos.w > 0 && p.gridPos.h > 0, `"${p.title}" has a size`);
    t.ok((p.targets ?? []).length > 0, `"${p.title}" has a query`);
    for (const q of p.targets ?? []) {
      t.equal(q.datasource?.uid ?? p.datasource?.uid, '${datasource}', `"${p.title}" ${q.refId} uses $datasource`);
      t.ok(q.expr && q.expr.trim(), `"${p.title}" ${q.refId} has an expression`);
    }
  }
});

t.test('every range vector uses $__rate_interval', async (t) => {
  let ranges = 0;
  for (const { panel, expr, target } of queries) {
    for (const m of expr.matchAll(/\[([^\]]*)\]/g)) {
      ranges++;
      t.equal(m[1], '$__rate_interval', `"${panel.title}" ${target.refId}: range [${m[1]}]`);
    }
    // rate/irate/increase/*_over_time must take a range vector, and only with that window.
    for (const m of expr.matchAll(/\b(rate|irate|increase|\w+_over_time)\s*\(/g)) {
      const after = expr.slice(m.index! + m[0].length);
      let depth = 1;
      let i = 0;
      for (; i < after.length && depth > 0; i++) {
        if (after[i] === '(') depth++;
        if (after[i] === ')') depth--;
      }
      t.match(after.slice(0, i - 1), /\[\$__rate_interval\]$/, `"${panel.title}" ${target.refId}: ${m[1]}() over $__rate_interval`);
    }
  }
  t.ok(ranges >= 10, `${ranges} range vectors checked`);
});

t.test('every modelwatch selector is filtered by the dashboard variables', async (t) => {
  for (const { panel, expr, target } of queries) {
    // A recording rule (level:metric:operations) is fleet-wide: it has no instance label, so
    // filtering it by $instance would empty the panel as soon as one instance is picked.
    const names = [...expr.matchAll(/(?<![\w:])((?:[a-z_]+:)?model_[a-z0-9_]+(?::[a-z0-9_]+)?)(\{[^}]*\})?/g)];
    for (const m of names) {
      const where = `"${panel.title}" ${target.refId}: ${m[1]}`;
      const recorded = m[1]!.includes(':');
      t.ok(m[2], `${where} has a label selector`);
      // model_reloads_total is per model: a reload is what changes the version.
      for (const v of m[1] === 'model_reloads_total' ? ['job', 'model'] : ['job', 'model', 'version']) t.match(m[2] ?? '', `${v}=~"$${v}"`, `${where} filters ${v}`);
      if (recorded) t.notMatch(m[2] ?? '', 'instance=', `${where} is fleet-wide, not filtered by instance`);
      else t.match(m[2] ?? '', 'instance=~"$instance"', `${where} filters instance`);
      const perFeature = recorded ? m[1]!.split(':')[0]!.split('_').includes('feature') : /^model_feature_/.test(m[1]!) && m[1] !== 'model_feature_log_rows_total';
      if (perFeature) t.match(m[2] ?? '', 'feature=~"$feature"', `${where} filters feature`);
    }
    if (/\b(up|ALERTS)\{/.test(expr)) t.match(expr, 'job=~"$job"', `"${panel.title}" ${target.refId}: filters job`);
  }
});

t.test('the panels the issue asks for', async (t) => {
  const find = (row: string, re: RegExp) => queries.filter((q) => rowOf(q.panel) === row && re.test(q.expr));
  const checks: [string, string, RegExp][] = [
    ['Traffic and health', 'requests by outcome', /sum by \(outcome\) \(rate\(model_requests_total\{/],
    ['Traffic and health', 'invalid inputs by reason', /sum by \(reason\) \(rate\(model_invalid_inputs_total\{/],
    ['Traffic and health', 'latency p50', /histogram_quantile\(0\.5, .*model_inference_duration_seconds_bucket/],
    ['Traffic and health', 'latency p99', /histogram_quantile\(0\.99, .*model_inference_duration_seconds_bucket/],
    ['Traffic and health', 'targets up', /^up\{/],
    ['Predictions', 'prediction distribution', /model_prediction_value_bucket/],
    ['Predictions', 'rolling mean prediction', /^model_prediction_mean\{/],
    ['Predictions', 'baseline prediction mean', /model_prediction_baseline_mean\{/],
    ['Predictions', 'outlier ratio', /model_prediction_outliers_total.*\/.*model_prediction_value_count.* or rate\(model_prediction_class_total\{/],
    ['Classification', 'class shares of the last hour', /^model_class:model_prediction_class:increase1h\{.*\/ ignoring \(class\) group_left model:model_prediction_class:increase1h\{/],
    ['Classification', 'training class shares', /^model_class:model_prediction_baseline_class_share:max\{/],
    ['Classification', 'fleet-wide class PSI', /^model:model_prediction_class:psi1h\{/],
    ['Classification', 'per-replica class PSI', /^model_prediction_class_psi\{/],
    ['Classification', 'per-replica class shares', /^model_prediction_class_share\{/],
    ['Classification', 'confidence distribution', /^sum by \(le\) \(rate\(model_prediction_confidence_bucket\{/],
    ['Classification', 'low-confidence share', /^model:model_prediction_confidence_low:ratio_rate1h\{/],
    ['Classification', 'training low-confidence share', /^model:model_prediction_baseline_low_confidence_ratio:max\{/],
    ['Classification', 'positive-class probability', /^sum by \(le\) \(rate\(model_prediction_probability_bucket\{/],
    ['Classification', 'fleet-wide accuracy', /^model:model_feedback_class:accuracy1h\{/],
    ['Classification', 'evaluation accuracy', /^model:model_prediction_baseline_accuracy:max\{/],
    ['Classification', 'precision per class', /^model_class:model_feedback_class:precision1h\{/],
    ['Classification', 'recall per class', /^model_class:model_feedback_class:recall1h\{/],
    ['Features', 'rolling feature mean', /^model_feature_mean\{/],
    ['Features', 'baseline feature mean', /model_feature_baseline_mean\{/],
    ['Features', 'deviation ratio', /^model_feature_mean_deviation_ratio\{/],
    ['Features', 'out-of-range ratio', /model_feature_out_of_range_total.*\/.*model_prediction_value_count.* or rate\(model_prediction_class_total\{/],
    ['Distribution drift', 'fleet-wide PSI', /^model_feature:model_feature_bin:psi1h\{/],
    ['Distribution drift', 'per-replica PSI', /^model_feature_psi\{/],
    ['Distribution drift', 'bin shares of the last hour', /^model_feature_bin:model_feature_bin:increase1h\{.*\/ ignoring \(bin\) group_left model_feature:model_feature_bin:increase1h\{/],
    ['Distribution drift', 'training bin shares', /^model_feature_bin:model_feature_baseline_bin_ratio:max\{/],
    ['Ground truth', 'fleet-wide MAE', /^model:model_prediction_abs_error:mae1h\{/],
    ['Ground truth', 'fleet-wide RMSE', /^model:model_prediction_squared_error:rmse1h\{/],
    ['Ground truth', 'held-out MAE', /^model:model_prediction_baseline_abs_error_mean:max\{/],
    ['Ground truth', 'the alert threshold', /^1\.5 \* model:model_prediction_baseline_abs_error_mean:max\{/],
    ['Ground truth', 'label coverage', /^model:model_feedback_matched_per_prediction:ratio_rate1h\{/],
    ['Ground truth', 'labels by outcome', /sum by \(outcome\) \(rate\(model_feedback_total\{/],
    ['Ground truth', 'rejected feedback by reason', /sum by \(reason\) \(rate\(model_feedback_rejected_total\{/],
    ['Ground truth', 'label delay p50', /^model:model_feedback_delay_seconds:p50_rate1h\{/],
    ['Ground truth', 'label delay p90', /^model:model_feedback_delay_seconds:p90_rate1h\{/],
    ['Ground truth', 'feedback store entries', /^model_feedback_store_entries\{/],
    ['Ground truth', 'feedback store evictions', /sum by \(reason\) \(rate\(model_feedback_evictions_total\{/],
    ['Ground truth', 'abs error distribution', /^sum by \(le\) \(rate\(model_prediction_abs_error_bucket\{/],
    ['Rollout: candidate vs primary', 'rows predicted per version', /^sum by \(model, version\) \(rate\(model_prediction_value_count\{.* or rate\(model_prediction_class_total\{/],
    ['Rollout: candidate vs primary', 'requests answered per version', /^sum by \(model, version\) \(rate\(model_requests_total\{.*outcome="ok"\}/],
    ['Rollout: candidate vs primary', 'prediction distribution per version', /^histogram_quantile\(0\.5, sum by \(model, version, le\) \(rate\(model_prediction_value_bucket\{/],
    ['Rollout: candidate vs primary', 'candidate diff p50', /^histogram_quantile\(0\.5, .*model_candidate_abs_diff_bucket/],
    ['Rollout: candidate vs primary', 'candidate diff p99', /^histogram_quantile\(0\.99, .*model_candidate_abs_diff_bucket/],
    ['Rollout: candidate vs primary', 'candidate diff mean', /model_candidate_abs_diff_sum\{.*\/ .*model_candidate_abs_diff_count\{/],
    ['Rollout: candidate vs primary', 'candidate outcomes', /sum by \(model, version, primary_version, outcome\) \(rate\(model_candidate_requests_total\{/],
    ['Rollout: candidate vs primary', 'MAE per version', /^model:model_prediction_abs_error:mae1h\{/],
    ['Rollout: candidate vs primary', 'accuracy per version', /^model:model_feedback_class:accuracy1h\{/],
    ['Rollout: candidate vs primary', 'PSI between versions', /^model_primary_version:model_prediction_bin:psi1h\{/],
    ['Rollout: candidate vs primary', 'reloads', /sum by \(model, role, outcome\) \(rate\(model_reloads_total\{/],
    ['Firing alerts', 'firing alerts', /ALERTS\{alertstate="firing"/],
  ];
  for (const [row, what, re] of checks) t.ok(find(row, re).length > 0, `${row}: ${what}`);

  const heatmaps = vizPanels.filter((p) => p.type === 'heatmap');
  t.same(
    heatmaps.map((p) => p.title),
    ['Prediction distribution', 'Confidence distribution', 'Positive-class probability (binary models)', 'Absolute error distribution'],
    'the prediction, confidence, probability and error distributions are heatmaps',
  );
  for (const h of heatmaps) t.match((h.targets?.[0] as { format?: string } | undefined)?.format, 'heatmap', `${h.title}: fed buckets as a heatmap`);

  const units = Object.fromEntries(vizPanels.map((p) => [p.title, p.fieldConfig?.defaults?.unit]));
  t.equal(units['Model latency p50 / p99'], 's', 'latency in seconds');
  t.equal(units['Label delay p50 / p90 (last hour)'], 's', 'label delay in seconds');
  for (const title of ['Predicted class shares vs training, fleet-wide (last hour)', 'Low-confidence share vs training (last hour)', 'Accuracy vs evaluation, fleet-wide (last hour)', 'Precision per class, fleet-wide (last hour)', 'Recall per class, fleet-wide (last hour)', 'Prediction outlier ratio', 'Feature mean deviation from training', 'Out-of-range ratio by feature', 'Bin shares vs training: last hour', 'Label coverage: matched labels per prediction (last hour)']) {
    t.equal(units[title], 'percentunit', `${title} is a 0..1 ratio shown as percent`);
  }
  t.ok(vizPanels.some((p) => p.repeat === 'feature'), 'rolling mean vs training repeats per feature');
});

t.test('every query is valid PromQL with the variables substituted', async (t) => {
  // promtool has no offline query parser, but `check rules` parses recording-rule expressions.
  const promtool = await requireBinary('promtool');
  const dir = await mkdtemp(join(tmpdir(), 'modelwatch-dashboard-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const substitute = (expr: string) =>
    expr
      .replaceAll('$__rate_interval', '1m')
      .replace(/\$\{?(job|instance|model|version|feature)\}?/g, '.*');
  const rules = queries.map((q, i) => ({ record: `dashboard:query:${i}`, expr: substitute(q.expr) }));
  for (const r of rules) t.notMatch(r.expr, /\$/, `no variable left in ${r.expr}`);
  const file = join(dir, 'dashboard-queries.yml');
  await writeFile(file, dump({ groups: [{ name: 'dashboard', rules }] }));
  const r = await runBinary(promtool, ['check', 'rules', file]);
  t.equal(r.code, 0, `promtool parses every query\n${r.stdout}${r.stderr}`);
  t.match(r.stdout, `SUCCESS: ${rules.length} rules found`);
});
