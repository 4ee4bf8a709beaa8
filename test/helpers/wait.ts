/**
 * The one way tests wait for something that happens in the background: polls `condition` (sync
 * or async) every 10 ms until it holds, and fails naming `what` after `timeoutMs`. No fixed sleeps:
 * on a loaded machine a test only gets slower, never wrong.
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}
