// The error thrown for any problem with the configuration file.

export interface ConfigProblem {
  /** YAML path of the value concerned, e.g. "sinks[0].type"; "" for the file as a whole */
  readonly path: string;
  /** 1-based line in the file, when known */
  readonly line?: number;
  /** 1-based column in the file, when known */
  readonly column?: number;
  readonly message: string;
}

/** Renders a data path: ['sinks', 0, 'key'] → "sinks[0].key"; odd keys are quoted: redis["a.b"]. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else {
      const s = String(seg);
      if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(s)) out += out === '' ? s : `.${s}`;
      else out += `[${JSON.stringify(s)}]`;
    }
  }
  return out;
}

/** "sluice.yaml:12:5 sinks[0].type: message" */
export function formatProblem(file: string, p: ConfigProblem): string {
  let where = file;
  if (p.line !== undefined) where += `:${p.line}`;
  if (p.line !== undefined && p.column !== undefined) where += `:${p.column}`;
  return p.path === '' ? `${where}: ${p.message}` : `${where} ${p.path}: ${p.message}`;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  readonly file: string;
  readonly problems: readonly ConfigProblem[];

  constructor(file: string, problems: readonly ConfigProblem[]) {
    super(problems.map((p) => formatProblem(file, p)).join('\n'));
    this.file = file;
    this.problems = problems;
  }
}
