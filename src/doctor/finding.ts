// One line of `synthvhd doctor`: how bad, what was found, and what to do about it.

export type Level = 'ok' | 'warn' | 'fail';

export interface Finding {
  readonly level: Level;
  readonly what: string;
  /** What to do; omitted when there is nothing to do. */
  readonly fix?: string;
}

export const ok = (what: string): Finding => ({ level: 'ok', what });
export const warn = (what: string, fix: string): Finding => ({ level: 'warn', what, fix });
export const fail = (what: string, fix: string): Finding => ({ level: 'fail', what, fix });

export function formatFinding(f: Finding): string {
  return `${f.level.padEnd(4)}  ${f.what}${f.fix ? ` — ${f.fix}` : ''}`;
}
