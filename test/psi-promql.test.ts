// The fleet-wide PSI recording rules (prometheus/rules/modelwatch-psi.rules.yml), evaluated by
// the real promtool on synthetic bin counters of two replicas, against psi() of
// src/monitor/psi.ts over the summed counts: the in-process and the fleet-wide PSI are the
// same formula. Prometheus 2 ranges include both ends, so [1h] at minute 70 holds the samples of
// minutes 10 to 70 and increase() is exactly the rows of minutes 11 to 70 (no extrapolation).
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import t from 'tap';
import { psi } from '../src/monitor/psi.js';
import { mulberry32 } from '../src/random.js';
import { requireBinary, runBinary } from './helpers/binaries.js';
import { diabetesBaseline, repoRoot } from './helpers/app.js';

const MINUTES = 70;
const RESTART = 40; // replica b restarts here: its counters start again from 0
const labels = (rest: string) => `job="modelwatch",model="diabetes",version="1",${rest}`;

interface Bin {
  feature: string;
  bin: number;
  /** Rows per minute, by replica: [a, b][minute], minute 0 has none. */
  rows: [number[], number[]];
}

/**
 * Per-minute rows in every bin of three features (2, 5 and 10 bins), drawn so that the shares
 * differ from training; two bins get no row at all, so the smoothing matters. A non-empty bin
 * gets at least one row a minute, so a restarted counter is always below its value before.
 */
function synthesize(): Bin[] {
  const random = mulberry32(42);
  const empty = new Set(['s4/0', 'bmi/9']);
  return ['sex', 's4', 'bmi'].flatMap((feature) => {
    const { bin_ratios } = diabetesBaseline.features.find((f) => f.name === feature)!;
    return bin_ratios.map((_, bin) => {
      const perMinute = () =>
        Array.from({ length: MINUTES + 1 }, (_, m) => (m === 0 || empty.has(`${feature}/${bin}`) ? 0 : 1 + Math.floor(random() * (bin + 3))));
      return { feature, bin, rows: [perMinute(), perMinute()] as [number[], number[]] };
    });
  });
}

/** The counter's samples, one a minute, as promtool's values string. */
function counterValues(rows: number[], restartAt?: number): string {
  let total = 0;
  return rows.map((r, m) => (total = (m === restartAt ? 0 : total) + r)).join(' ');
}

/** Rows of a bin in the `window` minutes up to `at`, both replicas: what sum(increase()) must give. */
const rowsIn = (b: Bin, at: number, window: number) =>
  b.rows.reduce((sum, perMinute) => sum + perMinute.slice(at - window + 1, at + 1).reduce((s, r) => s + r, 0), 0);

t.test('the recording rules give psi() of the bin counts summed over replicas, to 1e-12', async (t) => {
  const promtool = await requireBinary('promtool');
  const bins = synthesize();
  const features = [...new Set(bins.map((b) => b.feature))];
  const at = MINUTES;
  const inputSeries = bins.flatMap((b) => {
    const ratio = diabetesBaseline.features.find((f) => f.name === b.feature)!.bin_ratios[b.bin]!;
    return (['a:8080', 'b:8080'] as const).flatMap((instance, r) => [
      {
        series: `model_feature_bin_total{${labels(`instance="${instance}",feature="${b.feature}",bin="${b.bin}"`)}}`,
        values: counterValues(b.rows[r]!, instance === 'b:8080' ? RESTART : undefined),
      },
      { series: `model_feature_baseline_bin_ratio{${labels(`instance="${instance}",feature="${b.feature}",bin="${b.bin}"`)}}`, values: `${ratio}x${MINUTES}` },
    ]);
  });

  // rowsIn counts the rows themselves, so the equality below holds only if increase() sees the
  // restart (inside the 1h window, outside the 15m one) and counts the rows after it.
  for (const b of bins.filter((x) => x.rows[1].some((r) => r > 0))) {
    const values = counterValues(b.rows[1], RESTART).split(' ').map(Number);
    if (!(values[RESTART]! < values[RESTART - 1]!)) t.fail(`${b.feature}/${b.bin}: replica b's counter does not drop at the restart`);
  }

  const tests = [];
  const expectations: string[] = [];
  for (const [window, suffix] of [
    [60, '1h'],
    [15, '15m'],
  ] as const) {
    for (const feature of features) {
      const { bin_ratios } = diabetesBaseline.features.find((f) => f.name === feature)!;
      const counts = bins.filter((b) => b.feature === feature).map((b) => rowsIn(b, at, window));
      const n = counts.reduce((s, c) => s + c, 0);
      const expected = psi(counts, n, bin_ratios);
      expectations.push(`${feature} ${suffix}: n = ${n}, counts ${counts.join(' ')}, psi() = ${expected}`);
      t.ok(expected > 0.01, `${feature} ${suffix}: the synthetic shares differ from training (psi ${expected})`);
      const series = `{${labels(`feature="${feature}"`)}}`;
      tests.push(
        { expr: `model_feature:model_feature_bin:increase${suffix}{feature="${feature}"}`, eval_time: `${at}m`, exp_samples: [{ labels: `model_feature:model_feature_bin:increase${suffix}${series}`, value: n }] },
        // promtool compares exp_samples exactly; Go and V8 may sum in another order, so the
        // comparison with psi() is in PromQL, and a second one 1e-9 off must come out false.
        { expr: `abs(model_feature:model_feature_bin:psi${suffix}{feature="${feature}"} - ${expected}) < bool 1e-12`, eval_time: `${at}m`, exp_samples: [{ labels: series, value: 1 }] },
        { expr: `abs(model_feature:model_feature_bin:psi${suffix}{feature="${feature}"} - ${expected + 1e-9}) < bool 1e-12`, eval_time: `${at}m`, exp_samples: [{ labels: series, value: 0 }] },
      );
    }
  }
  t.comment(expectations.join('\n'));

  const dir = await mkdtemp(join(tmpdir(), 'modelwatch-psi-promql-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, 'psi.test.yml');
  await writeFile(
    file,
    dump({
      rule_files: [join(repoRoot, 'prometheus/rules/modelwatch-psi.rules.yml')],
      evaluation_interval: '1m',
      tests: [{ name: 'fleet-wide PSI equals psi()', interval: '1m', input_series: inputSeries, promql_expr_test: tests }],
    }),
  );
  const r = await runBinary(promtool, ['test', 'rules', file]);
  t.equal(r.code, 0, `promtool test rules passes\n${r.stdout}${r.stderr}`);
  t.match(r.stdout, /SUCCESS/);
});
