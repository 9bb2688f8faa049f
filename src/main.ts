// The executable's entry: answers --version and --help from usage.ts alone, and loads the
// commands (cli.ts and everything it imports) only to run one.
import { readFileSync } from 'node:fs';
import { isCommand, usage, usageOf } from './usage.js';

const out = (text: string) => process.stdout.write(`${text}\n`);
const [command, ...rest] = process.argv.slice(2);
const wantsHelp = (args: readonly string[]) => args.includes('--help') || args.includes('-h');

if (command === '--version' || command === '-v') {
  out((JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version);
} else if (command === undefined || wantsHelp([command])) {
  out(usage);
} else if (!isCommand(command)) {
  process.stderr.write(`modelwatch: unknown command "${command}"\n\n${usage}\n`);
  process.exitCode = 2;
} else if (wantsHelp(rest)) {
  if (command === 'serve') {
    const { optionsTable } = await import('./config.js');
    out(`modelwatch serve: every option is a flag and an environment variable; the flag wins.\n\n${optionsTable()}`);
  } else {
    out(usageOf(command));
  }
} else {
  const { commands } = await import('./cli.js');
  const code = await commands[command](rest).catch((err: Error & { code?: string }) => {
    process.stderr.write(`modelwatch ${command}: ${err.code ? `${err.code} ` : ''}${err.message}\n`);
    return 1;
  });
  // serve answers -1: it keeps running until a signal, which sets the exit code.
  if (code >= 0) process.exitCode = code;
}
