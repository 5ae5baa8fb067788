// Free loopback ports. A port is taken by binding it, so two runs never collide on a guess.
import net from 'node:net';

export function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const address = server.address();
      server.close(() => {
        if (address && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not read the bound port'));
      });
    });
  });
}

/**
 * Ports p such that p and p + offset are both free (Redis Cluster's bus uses port + 10000).
 * Picked from a range below 55535 so that p + 10000 stays valid.
 */
export async function freePortPairs(count: number, offset: number): Promise<number[]> {
  const picked: number[] = [];
  const taken = new Set<number>();
  for (let attempt = 0; picked.length < count && attempt < 2000; attempt++) {
    const port = 20000 + Math.floor(Math.random() * 30000);
    if (taken.has(port) || taken.has(port + offset)) continue;
    if ((await isPortFree(port)) && (await isPortFree(port + offset))) {
      picked.push(port);
      taken.add(port).add(port + offset);
    }
  }
  if (picked.length < count) throw new Error(`found only ${picked.length} of ${count} free port pairs`);
  return picked;
}
