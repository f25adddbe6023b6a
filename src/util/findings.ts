/** One result of a readiness check (`sluice check`, startup): what was found and how bad it is. */
export type Severity = 'ok' | 'warn' | 'error';

export interface Finding {
  readonly severity: Severity;
  readonly message: string;
}
