/**
 * Test-only fault points, for integration tests that must stop Sluice at an exact instant.
 * `SLUICE_TEST_FAULT` is read once, when this module is loaded; unset (always, outside tests) it
 * costs one comparison of a constant. Never set it in production: the process kills itself.
 *
 * - `exit-after-rejected-exec`: SIGKILL right after a batch's EXEC returned commands Redis
 *   refused, before their failed messages are recorded (the window the tail probe closes);
 * - `exit-after-rejected-record`: SIGKILL right after those records are written, before the slot
 *   is confirmed (a record that survived, with its batch still in the unconfirmed tail).
 */
export type TestFault = 'exit-after-rejected-exec' | 'exit-after-rejected-record';

const FAULT = process.env.SLUICE_TEST_FAULT ?? '';

/** Dies abruptly (SIGKILL, as `kill -9`: no handler, no flush) if `fault` is the one set. */
export function testFaultPoint(fault: TestFault): void {
  if (FAULT !== fault) return;
  process.stderr.write(`SLUICE_TEST_FAULT=${fault}: killing the process\n`);
  process.kill(process.pid, 'SIGKILL');
}
