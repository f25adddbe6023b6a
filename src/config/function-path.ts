// A sink's filter/transform/route is inline code or the path of a module (SPEC §4 "Functions").
// Which one a value is, decided here for both the config (sink-block.ts: the API takes inline
// code only) and the compiler (functions/compile.ts).

/** File names that are read as modules rather than as inline code. */
const PATH_RE = /^[^\s'"`(){}\[\];,=<>!&|?+*]+\.(?:ts|js|mts|mjs)$/;

/** Whether a config value names a file (rather than being inline code). */
export function isFunctionPath(value: string): boolean {
  return PATH_RE.test(value.trim());
}
