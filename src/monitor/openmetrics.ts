/**
 * prom-client renders one format per Registry, and its OpenMetrics mode renames counters in
 * place, which would break the text format served to other scrapers. The two formats differ in
 * little: counter families lose `_total` in their HELP/TYPE lines (samples keep it), and the
 * exposition ends with `# EOF`. The model_ families write either format (metrics.ts); prom-client's
 * default families are converted here from its text format.
 */
export const OPENMETRICS_CONTENT_TYPE = 'application/openmetrics-text; version=1.0.0; charset=utf-8';

export function wantsOpenMetrics(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('application/openmetrics-text');
}

/**
 * The exposition without NaN samples: prom-client's event-loop lag gauges read NaN until their
 * first sample, and the model_ families omit a value they do not have yet. A sample that says
 * nothing is left out, so every value served is a number a query can use.
 */
export const withoutNaN = (text: string): string =>
  // The multi-line pattern walks every line; a plain search finds first whether there is a NaN at all.
  text.includes(' Nan\n') ? text.replace(/^[^#\n][^\n]* Nan\n/gm, '') : text;

/** Families in the text format with each counter's HELP and TYPE lines named as OpenMetrics names them, without `_total`; no blank lines, no `# EOF`. */
export function openMetricsFamilies(text: string): string {
  const counters = new Set<string>();
  for (const match of text.matchAll(/^# TYPE (\S+) counter$/gm)) counters.add(match[1]!);
  const lines = text.split('\n').map((line) => {
    // Samples (all but a few lines) never start with '#': only the metadata lines need the pattern.
    if (!line.startsWith('#')) return line;
    const meta = /^# (HELP|TYPE) (\S+)( .*)?$/.exec(line);
    if (meta && counters.has(meta[2]!) && meta[2]!.endsWith('_total')) return `# ${meta[1]} ${meta[2]!.slice(0, -'_total'.length)}${meta[3] ?? ''}`;
    return line;
  });
  return lines.filter((line) => line !== '').join('\n');
}
