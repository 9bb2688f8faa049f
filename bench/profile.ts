/**
 * npm run bench:profile: where modelwatch's extra CPU per request goes, against the bare server.
 * Each server in turn runs under `node --cpu-prof` with the same closed-loop load; only the samples
 * of the main thread taken while the measured load ran count, divided by the requests answered
 * then: self time per request of every function, and the functions that differ most. Pairs run
 * one after the other, so a pair's difference is of one moment. Not part of npm test.
 *
 *   npm run bench:profile -- --batch 1 --pairs 2 --seconds 6
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadRows } from '../src/simulate.js';
import { root } from '../test/helpers/cli.js';
import { load, startServer } from './load.js';
import { bodies } from './throughput.js';

const defaults = { batch: '1', pairs: '2', seconds: '6', warmup: '3', connections: '16', top: '25' };
const { values: flags } = parseArgs({
  options: Object.fromEntries(Object.entries(defaults).map(([name, value]) => [name, { type: 'string' as const, default: value }])),
});
const num = (name: keyof typeof defaults) => Number(flags[name]);
const print = (line = '') => process.stdout.write(`${line}\n`);

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Self time per request (us) by function, of the samples taken between `from` and `to` (monotonic us, as V8 stamps them). */
function selfTimes(profile: CpuProfile, from: number, to: number, requests: number): Map<string, number> {
  const frames = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const times = new Map<string, number>();
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    if (t < from || t > to) continue;
    const frame = frames.get(profile.samples[i]!)!;
    if (frame.functionName === '(idle)') continue;
    const key = `${frame.functionName || '(anonymous)'} ${frame.url.split('/').slice(-2).join('/')}`.trim();
    times.set(key, (times.get(key) ?? 0) + (profile.timeDeltas[i + 1] ?? 0) / requests);
  }
  return times;
}

async function profiled(name: string, script: string, args: string[], sent: string[]): Promise<Map<string, number>> {
  const dir = await mkdtemp(join(tmpdir(), 'modelwatch-profile-'));
  try {
    const server = await startServer(name, script, args, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
    await load({ port: server.port, bodies: sent, connections: num('connections'), duration: num('warmup') });
    const from = Number(process.hrtime.bigint() / 1000n);
    const measured = await load({ port: server.port, bodies: sent, connections: num('connections'), duration: num('seconds') });
    const to = Number(process.hrtime.bigint() / 1000n);
    await server.stop();
    // One profile per thread: CPU.<date>.<time>.<pid>.<thread>.<n>.cpuprofile, thread 0 the main one.
    const main = (await readdir(dir)).find((file) => file.includes(`.${server.child.pid}.0.`));
    if (!main) throw new Error(`${name} wrote no profile of its main thread in ${dir}`);
    return selfTimes(JSON.parse(await readFile(join(dir, main), 'utf8')) as CpuProfile, from, to, measured.requests);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const total = (times: Map<string, number>) => [...times.values()].reduce((s, v) => s + v, 0);
const us = (n: number) => n.toFixed(2);

const { rows } = await loadRows(join(root, 'models/diabetes/train.csv'), 'target');
const sent = bodies(rows, num('batch'));
const work = await mkdtemp(join(tmpdir(), 'modelwatch-profile-log-'));
try {
  for (let pair = 1; pair <= num('pairs'); pair++) {
    const modelwatch = await profiled('modelwatch', 'src/main.ts', ['serve', '--csv', join(work, `pair-${pair}.csv`), '--log-level', 'warn'], sent);
    const bare = await profiled('bare', 'bench/bare-server.ts', [], sent);
    print(`pair ${pair}, batch ${num('batch')}: main-thread CPU per request ${us(total(modelwatch))} us (modelwatch) / ${us(total(bare))} us (bare) = ${(total(modelwatch) / total(bare)).toFixed(3)}`);
    print('| self time per request, us | modelwatch | bare | difference |');
    print('| --- | --- | --- | --- |');
    const names = [...new Set([...modelwatch.keys(), ...bare.keys()])];
    const differences = names.map((n) => ({ n, a: modelwatch.get(n) ?? 0, b: bare.get(n) ?? 0 })).sort((x, y) => Math.abs(y.a - y.b) - Math.abs(x.a - x.b));
    for (const { n, a, b } of differences.slice(0, num('top'))) print(`| ${n} | ${us(a)} | ${us(b)} | ${a >= b ? '+' : ''}${us(a - b)} |`);
    print();
  }
} finally {
  await rm(work, { recursive: true, force: true });
}
