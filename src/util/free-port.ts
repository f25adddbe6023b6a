import { createServer } from 'node:net';

/** Ports already handed out by this process: never hand the same one twice. */
const handedOut = new Set<number>();

function probe(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close((err) => (err ? reject(err) : resolve(port)));
    });
  });
}

/**
 * A TCP port that is free on 127.0.0.1 right now (the kernel picks it: listen on 0, then close).
 * There is an unavoidable window before the caller binds it; ports are never handed out twice
 * by one process, so concurrent servers started from the same process cannot collide.
 */
export async function freePort(host = '127.0.0.1'): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const port = await probe(host);
    if (port > 0 && !handedOut.has(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error('freePort: could not find a free port after 50 attempts');
}
