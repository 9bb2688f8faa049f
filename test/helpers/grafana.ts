/** A variable value as Grafana writes it into a PromQL regex matcher (its prometheusSpecialRegexEscape). */
export const escapeRegex = (value: string) => value.replace(/\\/g, '\\\\\\\\').replace(/[$^*{}[\]'+?.()|]/g, '\\\\$&');
