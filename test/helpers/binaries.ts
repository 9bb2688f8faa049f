// The binaries the tests run for real (promtool, amtool, prometheus, alertmanager, kubectl), found
// by src/binaries.ts. When one is missing and the tests run as root (a CI container), its Debian
// package is installed once; otherwise the error says how to install it.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DEBIAN_PACKAGES, findBinary, installInstructions as instructions, type BinaryName } from '../../src/binaries.js';

export type { BinaryName };
const execFileAsync = promisify(execFile);
const installInstructions = (name: BinaryName) => instructions(name, 'The tests run');

const installing = new Map<string, Promise<void>>();

/** apt-get install of the Debian packages, at most once per process and package list. */
function installDebianPackages(packages: readonly string[]): Promise<void> {
  const key = packages.join(' ');
  let install = installing.get(key);
  if (!install) {
    install = (async () => {
      const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
      // Another test process may hold the dpkg lock: wait for it instead of failing.
      const lock = ['-o', 'DPkg::Lock::Timeout=300'];
      const opts = { env, maxBuffer: 64 * 1024 * 1024, timeout: 15 * 60 * 1000 };
      await execFileAsync('apt-get', [...lock, 'update'], opts);
      await execFileAsync('apt-get', [...lock, 'install', '-y', '--no-install-recommends', ...packages], opts);
    })();
    installing.set(key, install);
  }
  return install;
}

/**
 * Absolute path of a tool. Installs its Debian packages when the binary is missing
 * and the process runs as root; otherwise throws an Error that says how to install them.
 */
export async function requireBinary(name: BinaryName): Promise<string> {
  const found = await findBinary(name);
  if (found) return found;
  if (process.getuid?.() === 0) {
    try {
      await installDebianPackages(DEBIAN_PACKAGES[name]);
    } catch (err) {
      throw new Error(
        `${installInstructions(name)}\nInstalling them with apt-get failed: ${(err as Error).message}`,
        { cause: err },
      );
    }
    const installed = await findBinary(name);
    if (installed) return installed;
  }
  throw new Error(installInstructions(name));
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a binary to completion and returns its exit code and output; never throws on a non-zero exit. */
export async function runBinary(
  path: string,
  args: readonly string[],
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<RunResult> {
  try {
    const { stdout, stderr } = await execFileAsync(path, [...args], {
      cwd: options.cwd,
      timeout: options.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: unknown; stdout?: string; stderr?: string; message: string };
    if (typeof e.code !== 'number') throw err; // spawn failure or timeout, not an exit status
    return { code: e.code, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
