/**
 * Errors a user can act on: `code` is stable (API, metrics), `message` is one sentence that
 * names what is wrong and how to fix it. The CLI prints only the message unless --debug.
 */
export class SluiceError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SluiceError';
    this.code = code;
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
