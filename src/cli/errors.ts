// Exit codes (README "Commands"): 0 ok, 1 runtime error, 2 bad usage.
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

/** A mistake in how the command was called: exits 2. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
