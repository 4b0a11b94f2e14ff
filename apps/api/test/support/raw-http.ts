import { connect } from 'node:net';

/**
 * Sends `raw` bytes over a fresh TCP connection and resolves with everything the server wrote until it
 * closed. With `halfClose: false` the client keeps its side open (as a client waiting for `100 Continue`
 * or uploading does), so the request must carry `Connection: close` or be refused by the server.
 */
export function rawHttp(
  url: string,
  raw: string | Buffer,
  options: { halfClose?: boolean } = {},
): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () =>
      options.halfClose === false ? socket.write(raw) : socket.end(raw),
    );
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
  });
}

/** Splits a raw HTTP/1.1 response into status, headers (lower-case names; repeated ones joined) and body. */
export function parseRawResponse(text: string): {
  status: number;
  headers: Record<string, string>;
  body: string;
} {
  const end = text.indexOf('\r\n\r\n');
  const head = text.slice(0, end).split('\r\n');
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head[0] ?? '')?.[1]);
  const headers: Record<string, string> = {};
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { status, headers, body: text.slice(end + 4) };
}
