// The README's code blocks, as the tests that run them read them.
import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { finished, root, type CliResult } from './cli.js';

export const readme = await readFile(join(root, 'README.md'), 'utf8');

/** The first ````lang```` block after the heading line `heading` (e.g. "## Quickstart"). */
export function codeBlock(heading: string, lang: 'sh' | 'python'): string {
  const block = readme.split(`\n${heading}\n`)[1]?.split(`\`\`\`${lang}\n`)[1]?.split('\n```')[0];
  if (block === undefined) throw new Error(`README.md has no ${lang} block under "${heading}"`);
  return block;
}

/** The comment lines right below a command line: what that command prints, `…` standing for any text. */
export function expectedLines(script: string): RegExp[] {
  const lines = script.split('\n');
  return lines
    .filter((line, i) => line.startsWith('# ') && i > 0 && lines[i - 1]!.trim() !== '' && !lines[i - 1]!.startsWith('#'))
    .map((line) => new RegExp(`^${line.slice(2).split('…').map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('.+?')}$`, 'm'));
}

/**
 * Runs a bash script in `cwd`. As root (CI) it runs in a network namespace of its own: the
 * README's ports (8080 to 8082) are then free whatever else runs on the machine, and nothing but
 * its loopback is reachable.
 */
export function runIsolated(script: string, cwd: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CliResult> {
  const isolated = process.getuid?.() === 0;
  const [command, ...args] = isolated ? ['unshare', '--net', 'sh', '-c', 'ip link set lo up && exec bash "$0"', script] : ['bash', script];
  return finished(spawn(command!, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] }), timeoutMs);
}
