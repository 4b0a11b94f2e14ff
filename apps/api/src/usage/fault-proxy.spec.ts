import { once } from 'node:events';
import net from 'node:net';
import { eventually } from '../../test/support/eventually';
import { FaultProxy, latency } from '../../test/support/fault-proxy';

/** A TCP target that echoes every chunk in upper case and remembers what it received. */
async function startEchoTarget() {
  const received: Buffer[] = [];
  let echoed = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      received.push(chunk);
      socket.write(chunk.toString('utf8').toUpperCase(), () => {
        echoed += chunk.length;
      });
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    port,
    received: () => Buffer.concat(received).toString('utf8'),
    echoed: () => echoed,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A client connection through the proxy, collecting what it reads and how it ended. */
function connect(port: number) {
  const socket = net.connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  const state = { error: undefined as NodeJS.ErrnoException | undefined, closed: false };
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  socket.on('error', (error: NodeJS.ErrnoException) => {
    state.error = error;
  });
  socket.on('close', () => {
    state.closed = true;
  });
  return {
    socket,
    state,
    text: () => Buffer.concat(chunks).toString('utf8'),
    connected: () => once(socket, 'connect'),
  };
}

describe('FaultProxy (test harness)', () => {
  let target: Awaited<ReturnType<typeof startEchoTarget>>;
  let proxy: FaultProxy;

  beforeEach(async () => {
    target = await startEchoTarget();
    proxy = await FaultProxy.start({ targetHost: '127.0.0.1', targetPort: target.port });
  });
  afterEach(async () => {
    await proxy.close();
    await target.close();
  });

  it('pass: forwards both ways', async () => {
    const client = connect(proxy.port);
    client.socket.write('hello');
    await eventually(() => client.text() === 'HELLO');
    expect(target.received()).toBe('hello');
    client.socket.destroy();
  });

  it('refuse: open connections are reset and new ones refused; back to pass on the same port', async () => {
    const port = proxy.port;
    const open = connect(port);
    await open.connected();
    await proxy.setMode('refuse');
    await eventually(() => open.state.closed);

    const refused = connect(port);
    await eventually(() => refused.state.closed);
    expect(refused.state.error?.code).toBe('ECONNREFUSED');

    await proxy.setMode('pass');
    expect(proxy.port).toBe(port);
    const again = connect(port);
    again.socket.write('back');
    await eventually(() => again.text() === 'BACK');
    again.socket.destroy();
  });

  it('reset: every connection is reset, nothing reaches the target', async () => {
    await proxy.setMode('reset');
    const client = connect(proxy.port);
    client.socket.write('lost');
    await eventually(() => client.state.closed);
    expect(client.text()).toBe('');
    expect(target.received()).toBe('');
  });

  it('blackhole: accepts and swallows; the broken connection is reset when the mode changes', async () => {
    await proxy.setMode('blackhole');
    const client = connect(proxy.port);
    await client.connected();
    client.socket.write('into the void');
    await eventually(() => proxy.swallowedBytes === 'into the void'.length);
    expect(target.received()).toBe('');
    expect(client.text()).toBe('');
    expect(client.state.closed).toBe(false);

    await proxy.setMode('pass');
    await eventually(() => client.state.closed);
    expect(client.text()).toBe('');
  });

  it('latency: the reply is held after the target answered, then arrives whole and in order', async () => {
    await proxy.setMode(latency(1000));
    const client = connect(proxy.port);
    await client.connected();
    client.socket.write('slow');
    await eventually(() => target.echoed() === 4);
    // The target has sent its answer; the proxy holds it for a second.
    expect(client.text()).toBe('');
    client.socket.write(' and steady');
    await eventually(() => client.text() === 'SLOW AND STEADY');
    client.socket.destroy();
  });

  it('drop-replies: the request reaches the target, the reply never reaches the client', async () => {
    await proxy.setMode('drop-replies');
    const client = connect(proxy.port);
    client.socket.write('fire and forget');
    await eventually(() => client.state.closed);
    expect(target.received()).toBe('fire and forget');
    expect(client.text()).toBe('');
    expect(proxy.swallowedBytes).toBeGreaterThan(0);
  });

  it('refuses a negative latency', () => {
    expect(() => latency(-1)).toThrow(RangeError);
  });
});
