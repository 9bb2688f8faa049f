// The checks that promote or roll back a candidate version, written once here and rendered by
// `npm run kubernetes` into deploy/rollouts/: Flagger MetricTemplates (with an example Canary
// analysis carrying the thresholds) and Argo Rollouts AnalysisTemplates, one per task.
// Each query returns one number; the threshold says which side passes.

/** What a query is about: the model, the two versions, and the window of rate(). */
export interface CheckVars {
  model: string;
  candidate: string;
  primary: string;
  window: string;
}

export type Task = 'regression' | 'classification';

export interface RolloutCheck {
  name: string;
  description: string;
  /** Which side of `value` passes. */
  pass: 'max' | 'min';
  value: number;
  /** The tasks the query has data for. */
  tasks: Task[];
  query(v: CheckVars): string;
}

const both: Task[] = ['regression', 'classification'];
const sel = (v: CheckVars, version: string, more = '') => `{model="${v.model}", version="${version}"${more}}`;
const pair = (v: CheckVars, more = '') => `{model="${v.model}", version="${v.candidate}", primary_version="${v.primary}"${more}}`;
const share = (v: CheckVars, version: string) => `model_bin:model_prediction_bin:smoothed_share1h${sel(v, version)}`;

export const rolloutChecks: RolloutCheck[] = [
  {
    name: 'candidate-error-ratio',
    description: 'Share of the candidate\'s predictions that failed in the model: answered requests in canary mode, shadow predictions in shadow mode (a shed shadow request is neither). Invalid input is the client\'s, not counted.',
    pass: 'max',
    value: 0.01,
    tasks: both,
    query: (v) =>
      `(\n  sum(rate(model_requests_total${sel(v, v.candidate, ', outcome="error"')}[${v.window}]))\n  + (sum(rate(model_candidate_requests_total${pair(v, ', outcome="error"')}[${v.window}])) or vector(0))\n)\n/\n(\n  sum(rate(model_requests_total${sel(v, v.candidate, ', outcome=~"ok|error"')}[${v.window}]))\n  + (sum(rate(model_candidate_requests_total${pair(v, ', outcome=~"ok|error"')}[${v.window}])) or vector(0))\n)`,
  },
  {
    // Added seconds, not a ratio: a model of microseconds doubles its p99 with one event-loop
    // hiccup, while what a client feels is the time the candidate adds.
    name: 'candidate-latency-p99-increase',
    description: 'p99 of the time inside the model per request, candidate minus primary, in seconds. In one server both versions share an event loop: a busy loop delays either by milliseconds, hence 25 ms.',
    pass: 'max',
    value: 0.025,
    tasks: both,
    query: (v) => {
      const p99 = (version: string) => `histogram_quantile(0.99, sum by (le) (rate(model_inference_duration_seconds_bucket${sel(v, version)}[${v.window}])))`;
      return `${p99(v.candidate)}\n-\n${p99(v.primary)}`;
    },
  },
  {
    name: 'prediction-psi',
    description: 'PSI of the candidate\'s predictions (bins, or classes) against the primary\'s over the last hour, fleet-wide, from the recording rules. The bins line up when the candidate is served with --candidate-dir beside the primary (its histogram takes the primary\'s bounds).',
    pass: 'max',
    value: 0.25,
    tasks: both,
    query: (v) =>
      `sum(\n  (${share(v, v.candidate)} - ignoring (version) ${share(v, v.primary)})\n  * ln(${share(v, v.candidate)} / ignoring (version) ${share(v, v.primary)})\n)`,
  },
  {
    name: 'prediction-diff-ratio',
    description: 'Shadow mode: mean abs(candidate - primary) on the same rows over abs(the primary\'s mean prediction).',
    pass: 'max',
    value: 0.1,
    tasks: ['regression'],
    query: (v) =>
      `(sum(rate(model_candidate_abs_diff_sum${pair(v)}[${v.window}])) / sum(rate(model_candidate_abs_diff_count${pair(v)}[${v.window}])))\n/\nabs(sum(rate(model_prediction_value_sum${sel(v, v.primary)}[${v.window}])) / sum(rate(model_prediction_value_count${sel(v, v.primary)}[${v.window}])))`,
  },
  {
    name: 'class-disagreement-ratio',
    description: 'Shadow mode: share of the rows on which the candidate predicted another class than the primary.',
    pass: 'max',
    value: 0.1,
    tasks: ['classification'],
    query: (v) => `sum(rate(model_candidate_agreement_total${pair(v, ', agree="false"')}[${v.window}]))\n/\nsum(rate(model_candidate_agreement_total${pair(v)}[${v.window}]))`,
  },
  {
    name: 'mae-ratio',
    description: 'With ground truth (POST /feedback): the candidate\'s MAE over the primary\'s, last hour, fleet-wide (recording rules).',
    pass: 'max',
    value: 1.1,
    tasks: ['regression'],
    query: (v) => `max(\n  model:model_prediction_abs_error:mae1h${sel(v, v.candidate)}\n  / ignoring (version)\n  model:model_prediction_abs_error:mae1h${sel(v, v.primary)}\n)`,
  },
  {
    name: 'accuracy-drop',
    description: 'With ground truth (POST /feedback): the primary\'s accuracy minus the candidate\'s, last hour, fleet-wide (recording rules).',
    pass: 'max',
    value: 0.02,
    tasks: ['classification'],
    query: (v) => `max(\n  model:model_feedback_class:accuracy1h${sel(v, v.primary)}\n  - ignoring (version)\n  model:model_feedback_class:accuracy1h${sel(v, v.candidate)}\n)`,
  },
];

/** The placeholders each tool substitutes, and the arguments a user sets. */
export const FLAGGER_VARS: CheckVars = { model: '{{ variables.model }}', candidate: '{{ variables.candidate_version }}', primary: '{{ variables.primary_version }}', window: '{{ interval }}' };
export const ARGO_VARS: CheckVars = { model: '{{args.model}}', candidate: '{{args.candidate-version}}', primary: '{{args.primary-version}}', window: '{{args.window}}' };
/** kube-prometheus-stack's Prometheus, as deploy/kubernetes expects it. */
export const PROMETHEUS_ADDRESS = 'http://kube-prometheus-stack-prometheus.monitoring:9090';
/** Argo's successCondition for a check: `result[0] <= 0.25` and the like. */
export const successCondition = (c: RolloutCheck) => `result[0] ${c.pass === 'max' ? '<=' : '>='} ${c.value}`;

export function flaggerMetricTemplates(): object[] {
  return rolloutChecks.map((c) => ({
    apiVersion: 'flagger.app/v1beta1',
    kind: 'MetricTemplate',
    metadata: { name: `modelwatch-${c.name}`, annotations: { 'modelwatch/description': c.description } },
    spec: { provider: { type: 'prometheus', address: PROMETHEUS_ADDRESS }, query: c.query(FLAGGER_VARS) },
  }));
}

/** An example Canary analysis for the diabetes model, version 2 against 1: the thresholds live in the Canary with Flagger. */
export function flaggerCanaryAnalysis(task: Task = 'regression'): object {
  return {
    analysis: {
      interval: '1m',
      threshold: 5,
      iterations: 30,
      metrics: rolloutChecks
        .filter((c) => c.tasks.includes(task))
        .map((c) => ({
          name: c.name,
          templateRef: { name: `modelwatch-${c.name}` },
          interval: '10m',
          thresholdRange: { [c.pass]: c.value },
          templateVariables: { model: 'diabetes', candidate_version: '2', primary_version: '1' },
        })),
    },
  };
}

export function argoAnalysisTemplates(): object[] {
  return (['regression', 'classification'] as const).map((task) => ({
    apiVersion: 'argoproj.io/v1alpha1',
    kind: 'AnalysisTemplate',
    metadata: { name: `modelwatch-candidate-${task}` },
    spec: {
      args: [{ name: 'model' }, { name: 'candidate-version' }, { name: 'primary-version' }, { name: 'window', value: '10m' }, { name: 'prometheus', value: PROMETHEUS_ADDRESS }],
      metrics: rolloutChecks
        .filter((c) => c.tasks.includes(task))
        .map((c) => ({
          name: c.name,
          interval: '5m',
          count: 6,
          failureLimit: 1,
          successCondition: successCondition(c),
          provider: { prometheus: { address: '{{args.prometheus}}', query: c.query(ARGO_VARS) } },
        })),
    },
  }));
}
