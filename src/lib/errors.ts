// BgrmError: every failure the user can meet carries a stable code and says what to do next.
export class BgrmError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
    this.name = 'BgrmError';
  }
}

/** The code of any error: ours, the native core's (which sets `code`), or Node's (ENOENT...). */
export function errorCode(err: unknown): string {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return 'ERR_INTERNAL';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
