/**
 * npm run bench:shadow: what shadow mode costs the primary's answer path. One server alone and one
 * with a candidate in shadow mode (the same model under another version, so both do the same work),
 * in A/B rounds at batch 1, as the ratio of their request rates and server CPU per request, with
 * how much shadow work the candidate did and shed. Not part of npm test.
 */
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadRows } from '../src/simulate.js';
import { root } from '../test/helpers/cli.js';
import { median, startServer, type Server } from './load.js';
import { bodies, compare } from './throughput.js';

const defaults = { seconds: '5', rounds: '3', warmup: '3', connections: '16' };
const { values: flags } = parseArgs({ options: Object.fromEntries(Object.entries(defaults).map(([name, value]) => [name, { type: 'string' as const, default: value }])) });
const num = (name: keyof typeof defaults) => Number(flags[name]);
const print = (line = '') => process.stdout.write(`${line}\n`);
const fmt = (n: number, digits = 2) => n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits });

const diabetes = join(root, 'models/diabetes');
const work = await mkdtemp(join(tmpdir(), 'modelwatch-bench-shadow-'));
try {
  const candidateDir = join(work, 'candidate');
  await mkdir(candidateDir);
  await copyFile(join(diabetes, 'model.onnx'), join(candidateDir, 'model.onnx'));
  await writeFile(join(candidateDir, 'baseline.json'), JSON.stringify({ ...JSON.parse(await readFile(join(diabetes, 'baseline.json'), 'utf8')), version: 'shadow' }));
  const serve = (name: string, extra: string[]) => startServer(name, 'src/main.ts', ['serve', '--csv', join(work, `${name}.csv`), '--log-level', 'warn', ...extra]);

  print(`${cpus().length} x ${cpus()[0]?.model ?? 'unknown CPU'}, node ${process.version}; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}`);
  const { rows } = await loadRows(join(diabetes, 'train.csv'), 'target');
  const servers: Server[] = [await serve('alone', []), await serve('shadow', ['--candidate-dir', candidateDir, '--rollout', 'shadow'])];
  const candidateWork = async () => {
    const metrics = await (await fetch(`http://127.0.0.1:${servers[1]!.port}/metrics`)).text();
    return Object.fromEntries(['ok', 'shed', 'error'].map((outcome) => [outcome, Number(new RegExp(`^model_candidate_requests_total\\{[^}]*outcome="${outcome}"\\} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN)]));
  };
  const phase = async (title: string, rate?: number) => {
    const before = await candidateWork();
    const { rounds } = await compare(servers, bodies(rows, 1), { batch: 1, connections: num('connections'), warmupSeconds: num('warmup'), seconds: num('seconds'), rounds: num('rounds'), rate });
    const after = await candidateWork();
    print(`${title}: shadow / alone at batch 1, ${num('rounds')} rounds of ${num('seconds')} s each (A/B in turn), ${num('connections')} connections:`);
    print('| round | req/s ratio | server CPU/request ratio | p99 ratio | alone req/s | shadow req/s |');
    print('| --- | --- | --- | --- | --- | --- |');
    const ratios = rounds.map((byServer) => {
      const [a, s] = [byServer.get('alone')!, byServer.get('shadow')!];
      return { rate: s.requestsPerSecond / a.requestsPerSecond, cpu: s.cpuMicrosPerRequest / a.cpuMicrosPerRequest, p99: s.p99 / a.p99, a, s };
    });
    ratios.forEach((r, i) => print(`| ${i + 1} | ${fmt(r.rate)} | ${fmt(r.cpu)} | ${fmt(r.p99)} | ${fmt(r.a.requestsPerSecond, 0)} | ${fmt(r.s.requestsPerSecond, 0)} |`));
    print(`| **median** | **${fmt(median(ratios.map((r) => r.rate)))}** | **${fmt(median(ratios.map((r) => r.cpu)))}** | **${fmt(median(ratios.map((r) => r.p99)))}** | | |`);
    const [ok, shed, error] = ['ok', 'shed', 'error'].map((o) => after[o]! - before[o]!) as [number, number, number];
    print(`the candidate's shadow work (warm-up included): ${fmt(ok, 0)} predicted, ${fmt(shed, 0)} shed (${fmt((100 * shed) / (ok + shed + error), 1)} %), ${fmt(error, 0)} failed`);
    const non200 = ratios.reduce((n, r) => n + r.a.non200 + r.s.non200, 0);
    if (non200 > 0) print(`non-200 answers: ${non200}`);
    print();
    return median(rounds.map((byServer) => byServer.get('alone')!.requestsPerSecond));
  };
  try {
    const saturated = await phase('as fast as each answers (goal: req/s ratio >= 0.90)');
    // Below saturation the candidate can keep up: there the cost shows as CPU, not as shed work.
    await phase(`paced at half the lone server's rate, ${fmt(saturated / 2, 0)} req/s (the CPU ratio is the cost of shadowing every row)`, Math.round(saturated / 2));
  } finally {
    for (const server of servers) await server.stop();
  }
  print(`rerun: npm run bench:shadow -- ${Object.keys(defaults).map((name) => `--${name} ${flags[name]}`).join(' ')}`);
} finally {
  await rm(work, { recursive: true, force: true });
}
